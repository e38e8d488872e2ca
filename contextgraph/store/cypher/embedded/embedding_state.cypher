// Embedded: what each stored embedding was made from (model, text hash, content hash), one narrow row
// per embedding; EmbeddedStore.decisions_needing_embedding compares it with decision_hashes, and
// EmbeddedStore._index_state digests it.
MATCH (e:DecisionEmbedding)
RETURN e.key AS key, e.embedding_model AS model, e.embedded_hash AS text_hash,
       e.embedded_content_hash AS content_hash
