// Embedded: every answered decision's key and content hash (narrow), for the index beside the file
// (EmbeddedStore._index_state: with embedding_state and index_proposals, what the index is made of).
MATCH (d:Decision)
WHERE d.response_received = true
RETURN d.key AS key, d.content_hash AS content_hash
