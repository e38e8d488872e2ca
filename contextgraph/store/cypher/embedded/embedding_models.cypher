// Embedded decisions per embedding model (embeddings live in their own table).
MATCH (e:DecisionEmbedding) RETURN e.embedding_model AS model, count(e) AS n
