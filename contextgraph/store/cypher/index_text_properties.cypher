// The properties the full-text index decision_text covers (Neo4j).
SHOW INDEXES YIELD name, properties WHERE name = 'decision_text' RETURN properties
