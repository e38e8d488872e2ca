// Remember forgotten keys by their salted hashes, never the keys themselves.
UNWIND $rows AS row
MERGE (f:ForgottenKey {key: row.hash})
SET f.kind = row.kind, f.at = row.at
