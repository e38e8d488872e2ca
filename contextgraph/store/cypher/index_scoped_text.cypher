// Whether the full-text index decision_scoped_text exists and can answer (Neo4j; a populating
// index is waited for by its queries).
SHOW INDEXES YIELD name, state WHERE name = 'decision_scoped_text' AND state <> 'FAILED' RETURN name
