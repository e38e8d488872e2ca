// Per decision point: its DAG's newest version, whether the task is still in the DAG's latest
// version, and what decisions made under versions newer than $points[i].version offered.
UNWIND $points AS p
MATCH (t:Task {dag_id: p.dag_id, task_id: p.task_id})
MATCH (:Dag {dag_id: p.dag_id})-[:VERSION_OF]->(w:DagVersion)
RETURN p.dag_id AS dag_id, p.task_id AS task_id, t.in_latest_version AS in_latest,
       max(w.version_number) AS newest
