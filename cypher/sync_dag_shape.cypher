// The tasks of one DAG already in the graph, with their downstream task ids.
MATCH (t:Task)
WHERE t.dag_id = $dag_id
RETURN t.task_id AS task_id, t.downstream_task_ids AS downstream
