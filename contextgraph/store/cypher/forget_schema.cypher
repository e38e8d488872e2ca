// Governance (contextgraph.forget): erasure audit records, remembered (hashed) forgotten keys and
// the graph's salt for those hashes. Applied by `contextgraph forget` before it writes (idempotent).
CREATE CONSTRAINT forget_audit_key IF NOT EXISTS FOR (n:ForgetAudit) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT forgotten_key_key IF NOT EXISTS FOR (n:ForgottenKey) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT graph_salt_key IF NOT EXISTS FOR (n:GraphSalt) REQUIRE n.key IS UNIQUE;
