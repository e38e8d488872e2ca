// The graph's layout version (contextgraph.migrate); no row before versions existed.
MATCH (s:SchemaVersion)
RETURN max(s.version) AS version
