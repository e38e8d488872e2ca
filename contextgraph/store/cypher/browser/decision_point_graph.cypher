// The shape of a decision point at a glance, as a graph: the HITL task, its options, and the
// decisions that chose each option (most recent first), with who decided them.
// :param dag_id => 'ai_support_ticket_system'
// :param task_id => 'review_response'
// :param limit => 30
MATCH (point:Task {dag_id: $dag_id, task_id: $task_id})<-[at:AT_POINT]-(d:Decision)-[c:CHOSE]->(o:Option)
WITH point, at, d, c, o ORDER BY d.responded_at DESC LIMIT $limit
OPTIONAL MATCH by = (d)-[:DECIDED_BY]->(:Actor)
RETURN point, at, d, c, o, by
