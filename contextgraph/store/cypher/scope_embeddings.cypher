// Embeddings of these decisions (copied into a scoped view).
UNWIND $keys AS k
MATCH (d:Decision {key: k})
WHERE d.embedding IS NOT NULL
RETURN d.key AS key, d.embedding AS vector, d.embedding_model AS model,
       d.embedded_hash AS text_hash, d.embedded_content_hash AS content_hash
