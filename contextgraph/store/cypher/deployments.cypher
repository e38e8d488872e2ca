// The deployments (Airflows) whose DAGs the graph holds.
MATCH (g:Dag)
RETURN DISTINCT g.deployment AS name
ORDER BY name
