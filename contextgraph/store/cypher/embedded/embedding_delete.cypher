// Remove the embeddings about to be replaced (COPY then appends the new ones). A primary-key
// match per key: `WHERE e.key IN $keys` scans the table once per key and is 30x slower.
UNWIND $keys AS k
MATCH (e:DecisionEmbedding {key: k})
DELETE e
