// Which of these DAGs already have their tasks in the graph.
UNWIND $dag_ids AS id
MATCH (t:Task)
WHERE t.dag_id = id AND t.deployment = $deployment
RETURN DISTINCT t.dag_id AS dag_id
