// Upsert relationships of one type between existing nodes; returns how many found both ends.
UNWIND $rows AS row
MATCH (a:{source} {key: row.src})
MATCH (b:{target} {key: row.dst})
MERGE (a)-[r:{type}]->(b)
SET {set}
RETURN count(r) AS written
