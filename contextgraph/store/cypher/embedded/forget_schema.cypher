// Governance tables (contextgraph.forget) for the embedded engine; see cypher/forget_schema.cypher.
CREATE NODE TABLE IF NOT EXISTS ForgetAudit(key STRING PRIMARY KEY, kind STRING, at TIMESTAMP, counts STRING);
CREATE NODE TABLE IF NOT EXISTS ForgottenKey(key STRING PRIMARY KEY, kind STRING, at TIMESTAMP);
CREATE NODE TABLE IF NOT EXISTS GraphSalt(key STRING PRIMARY KEY, salt STRING);
