// Stored usefulness scores of precedents (contextgraph.usefulness); idempotent.
CREATE CONSTRAINT precedent_usefulness_key IF NOT EXISTS FOR (n:PrecedentUsefulness) REQUIRE n.key IS UNIQUE;
