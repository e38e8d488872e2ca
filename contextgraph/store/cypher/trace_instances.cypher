// The task instances of the decision's run, with their states: what ran before and what followed.
MATCH (ti:TaskInstance)
WHERE ti.deployment = $deployment AND ti.dag_id = $dag_id AND ti.run_id = $run_id
RETURN ti.task_id AS task_id, ti.map_index AS map_index, ti.state AS state,
       ti.start_date AS start_date, ti.end_date AS end_date
ORDER BY coalesce(ti.start_date, ti.end_date), task_id, map_index
