// The states of some task instances of one run (the children of a branching decision point).
MATCH (ti:TaskInstance)
WHERE ti.deployment = $deployment AND ti.dag_id = $dag_id AND ti.run_id = $run_id AND ti.task_id IN $task_ids
RETURN ti.task_id AS task_id, ti.state AS state
