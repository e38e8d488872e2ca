// Why a filtered precedent search found nothing: how many decisions each filter alone keeps.
// $dag_id, $task_id, $chosen: the filters (null: not given); $since: answered at or after (null).
MATCH (d:Decision)
RETURN count(d) AS decisions,
       count(CASE WHEN d.dag_id = $dag_id THEN 1 END) AS of_dag,
       count(CASE WHEN d.task_id = $task_id THEN 1 END) AS of_task,
       count(CASE WHEN $chosen IN d.chosen_options THEN 1 END) AS with_chosen,
       count(CASE WHEN d.responded_at >= $since THEN 1 END) AS since,
       collect(DISTINCT d.dag_id) AS dags,
       collect(DISTINCT d.task_id) AS tasks
