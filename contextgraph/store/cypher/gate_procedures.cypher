// The server's procedures and their mode, for the read-only gate (Neo4j).
SHOW PROCEDURES YIELD name, mode RETURN name, mode
