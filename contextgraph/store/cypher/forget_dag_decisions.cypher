// A DAG's decisions with when each was asked (the caller applies --before).
MATCH (d:Decision)
WHERE d.dag_id = $dag_id
RETURN d.key AS key, d.created_at AS created_at
