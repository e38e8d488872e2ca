// The content hash of each relationship of one type among $pairs.
UNWIND $pairs AS p
MATCH (a:{source} {key: p.src})-[r:{type}]->(b:{target} {key: p.dst})
RETURN a.key AS src, b.key AS dst, r.content_hash AS hash
