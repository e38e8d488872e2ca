// Upsert nodes of one label on their natural key. The label and the SET list come from the model.
UNWIND $rows AS row
MERGE (n:{label} {key: row.key})
SET {set}
