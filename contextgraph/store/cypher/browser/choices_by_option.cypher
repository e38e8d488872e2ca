// One decision point's choices by option: how often each option was chosen, and its share.
// A decision point is a HITL task of a DAG; every option it ever offered is listed (0 if never chosen).
// :param dag_id => 'ai_support_ticket_system'
// :param task_id => 'review_response'
MATCH (point:Task {dag_id: $dag_id, task_id: $task_id})<-[:AT_POINT]-(d:Decision)
WHERE d.response_received
WITH point, count(d) AS answered
MATCH (o:Option {dag_id: $dag_id, task_id: $task_id})
OPTIONAL MATCH (d:Decision)-[:CHOSE]->(o)
WITH o, answered, count(d) AS chosen, sum(CASE WHEN d.timed_out THEN 1 ELSE 0 END) AS by_timeout
RETURN o.name AS option,
       chosen,
       round(100.0 * chosen / answered, 1) AS share_percent,
       by_timeout AS chosen_by_timeout,
       answered AS answered_decisions
ORDER BY chosen DESC, option
