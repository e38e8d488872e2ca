// The DAG ids and decision points the graph knows (to check a scope's values).
MATCH (t:Task)
RETURN t.dag_id AS dag_id, t.task_id AS task_id
