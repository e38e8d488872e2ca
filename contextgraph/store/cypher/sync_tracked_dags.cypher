// DAGs whose runs and task instances an earlier sync read (only their changes are read again).
MATCH (d:Dag)
WHERE d.tracked = true AND d.deployment = $deployment
RETURN d.dag_id AS dag_id
