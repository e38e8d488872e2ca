// The tasks of one DAG's latest version already in the graph, with their downstream task ids.
MATCH (t:Task)
WHERE t.deployment = $deployment AND t.dag_id = $dag_id AND coalesce(t.in_latest_version, true) = true
RETURN t.task_id AS task_id, t.downstream_task_ids AS downstream, t.is_decision_point AS point
