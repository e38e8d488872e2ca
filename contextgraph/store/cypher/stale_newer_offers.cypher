// What decisions at these points offered under versions newer than the given one (distinct).
UNWIND $points AS p
MATCH (d:Decision {dag_id: p.dag_id, task_id: p.task_id})-[:UNDER_VERSION]->(v:DagVersion)
WHERE v.version_number > p.version
RETURN DISTINCT p.dag_id AS dag_id, p.task_id AS task_id, p.version AS since,
       v.version_number AS version, d.offered AS offered
