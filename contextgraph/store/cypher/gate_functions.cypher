// The server's functions, for the read-only gate (Neo4j).
SHOW FUNCTIONS YIELD name RETURN name
