// Remove DECIDED_BY edges to the forgotten actor's nodes (the tombstone's are written after).
UNWIND $keys AS k
MATCH (d:Decision)-[r:DECIDED_BY]->(a:Actor {key: k})
DELETE r
