// Proposals already recorded for these decisions (an upstream XCom does not change). Each decision
// is found by key first, then its proposals (OPTIONAL MATCH keeps the planner from starting at
// every Proposal: a plan made while the graph was small did that for a whole first ingest).
UNWIND $keys AS k
MATCH (d:Decision {key: k})
OPTIONAL MATCH (d)-[:REVIEWED]->(p:Proposal)
WITH d, p
WHERE p IS NOT NULL
RETURN d.key AS key, p.task_id AS task_id, p.xcom_key AS xcom_key, p.map_index AS map_index, p.value AS value
