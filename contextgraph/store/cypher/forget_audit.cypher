// One erasure's audit record: what kind, when, how many of each thing went (never the content).
CREATE (a:ForgetAudit {key: $key, kind: $kind, at: $at, counts: $counts})
