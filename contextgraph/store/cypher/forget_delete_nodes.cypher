// Delete nodes with all their relationships ({label} is checked by the caller).
UNWIND $keys AS k
MATCH (n:{label} {key: k})
DETACH DELETE n
