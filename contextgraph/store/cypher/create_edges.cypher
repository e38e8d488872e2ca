// Create relationships of one type that cannot exist yet: one of their ends was created by the same
// write. No MERGE, so no lookup of existing relationships. Returns how many found both ends.
UNWIND $rows AS row
MATCH (a:{source} {key: row.src})
MATCH (b:{target} {key: row.dst})
CREATE (a)-[r:{type}]->(b)
SET {set}
RETURN count(r) AS written
