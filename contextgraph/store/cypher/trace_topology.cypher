// The decision point's place in its DAG: every task that feeds it (upstream) and every task it
// feeds (downstream), following FEEDS edges.
MATCH (t:Task)
WHERE t.deployment = $deployment AND t.dag_id = $dag_id AND t.task_id = $task_id
OPTIONAL MATCH (u:Task)-[:FEEDS*1..30]->(t)
WITH t, collect(DISTINCT u.task_id) AS upstream
OPTIONAL MATCH (t)-[:FEEDS*1..30]->(w:Task)
RETURN upstream, collect(DISTINCT w.task_id) AS downstream
