// Proposals already recorded for these decisions (an upstream XCom does not change).
UNWIND $keys AS k
MATCH (d:Decision)-[:REVIEWED]->(p:Proposal)
WHERE d.key = k
RETURN d.key AS key, p.task_id AS task_id, p.xcom_key AS xcom_key, p.map_index AS map_index, p.value AS value
