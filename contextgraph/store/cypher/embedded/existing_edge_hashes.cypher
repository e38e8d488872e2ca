// Ladybug: the content hash of each relationship of one type at the node whose key is $key, at the
// end {end} (a: source, b: target). Run once per key: a key bound to a parameter is a primary-key
// scan followed by that node's adjacency list (50-140 µs a key at 100k decisions). The Neo4j form
// (UNWIND $pairs, both ends matched by key) is planned here as a hash join over every relationship
// of the type: seconds and a full buffer pool at 100k.
MATCH (a:{source})-[r:{type}]->(b:{target})
WHERE {end}.key = $key
RETURN a.key AS src, b.key AS dst, r.content_hash AS hash
