// The deployment `contextgraph migrate` gave the nodes of a graph written before deployments.
MATCH (s:SchemaVersion)
RETURN s.legacy_deployment AS legacy
