// Stored embeddings of these decisions (Neo4j: a property of the node, gone with it).
UNWIND $keys AS k
MATCH (d:Decision {key: k})
WHERE d.embedding IS NOT NULL
RETURN count(d) AS n
