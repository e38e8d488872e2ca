// The content hash of each node of one label among $keys (to write only what changed).
// The label is a model label, checked before use.
UNWIND $keys AS k
MATCH (n:{label} {key: k})
RETURN n.key AS key, n.content_hash AS hash
