// A reviewer's history: every decision one person made, newest first, with the verdict on the AI.
// $reviewer is an Actor's actor_id (an Airflow user id, a Slack user id, or 'timeout').
// :param reviewer => 'chen'
MATCH (a:Actor {actor_id: $reviewer})<-[:DECIDED_BY]-(d:Decision)
OPTIONAL MATCH (d)-[r:REVIEWED]->(:Proposal)
RETURN d.responded_at AS answered_at,
       d.subject AS subject,
       d.chosen_options AS chosen,
       r.verdict AS verdict,
       d.reason AS reason,
       d.key AS key
ORDER BY d.responded_at DESC
