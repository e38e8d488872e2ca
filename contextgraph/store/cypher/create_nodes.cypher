// Create nodes of one label that the store does not have (a lookup just said so); the uniqueness
// constraint on `key` still guards against a concurrent writer (Neo4j then MERGEs the batch instead).
UNWIND $rows AS row
CREATE (n:{label} {key: row.key})
SET {set}
