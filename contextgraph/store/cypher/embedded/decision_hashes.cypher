// Embedded: every decision's key and content hash (narrow: compared with embedding_state).
MATCH (d:Decision)
RETURN d.key AS key, d.content_hash AS content_hash
