// The vector index's options (its dimensions) (Neo4j).
SHOW INDEXES YIELD name, options WHERE name = 'decision_embedding' RETURN options
