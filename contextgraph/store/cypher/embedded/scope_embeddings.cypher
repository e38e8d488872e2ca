// Embeddings of these decisions (copied into a scoped view); the embedded store keeps them apart.
UNWIND $keys AS k
MATCH (e:DecisionEmbedding {key: k})
RETURN e.key AS key, e.embedding AS vector, e.embedding_model AS model,
       e.embedded_hash AS text_hash, e.embedded_content_hash AS content_hash
