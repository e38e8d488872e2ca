// Stored embeddings of these decisions (the embedded store keeps them in their own table).
UNWIND $keys AS k
MATCH (e:DecisionEmbedding {key: k})
RETURN count(e) AS n
