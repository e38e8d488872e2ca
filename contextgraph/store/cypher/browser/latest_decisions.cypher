// Latest decisions, with what was chosen, by whom and why.
// The newest answered HITL decisions first; pending ones show no choice yet.
// :param limit => 25
MATCH (d:Decision)
OPTIONAL MATCH (d)-[:DECIDED_BY]->(a:Actor)
RETURN d.responded_at AS answered_at,
       d.subject AS subject,
       d.chosen_options AS chosen,
       d.reason AS reason,
       coalesce(a.name, a.actor_id, '(waiting)') AS decided_by,
       d.timed_out AS timed_out,
       d.key AS key
ORDER BY coalesce(d.responded_at, d.created_at) DESC
LIMIT $limit
