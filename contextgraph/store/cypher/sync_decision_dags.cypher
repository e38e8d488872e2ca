// DAGs with a decision point in the graph (a HITL task, or a task seen asking a human).
MATCH (t:Task)
WHERE t.is_decision_point = true AND t.deployment = $deployment
RETURN DISTINCT t.dag_id AS dag_id
