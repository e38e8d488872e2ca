// Remove the embeddings about to be replaced (COPY then appends the new ones).
MATCH (e:DecisionEmbedding)
WHERE e.key IN $keys
DELETE e
