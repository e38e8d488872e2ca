// Embedded: what each stored embedding was made from (model, content hash), one narrow row per
// embedding; EmbeddedStore.decisions_needing_embedding compares it with decision_hashes.
MATCH (e:DecisionEmbedding)
RETURN e.key AS key, e.embedding_model AS model, e.embedded_content_hash AS content_hash
