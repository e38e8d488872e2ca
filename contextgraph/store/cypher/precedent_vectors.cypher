// Neo4j: the stored embeddings (of $model) of these decisions, for diversity and lessons.
UNWIND $keys AS k
MATCH (d:Decision {key: k})
WHERE d.embedding_model = $model
RETURN d.key AS key, d.embedding AS vector
