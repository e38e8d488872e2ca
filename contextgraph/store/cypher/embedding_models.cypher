// Embedded decisions per embedding model.
MATCH (d:Decision) WHERE d.embedding_model IS NOT NULL
RETURN d.embedding_model AS model, count(d) AS n
