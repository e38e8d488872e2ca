// AI proposals that humans overrode, and why: the AI's draft next to the reviewer's reason.
// `verdict` on REVIEWED is read from the chosen option ('overridden' = e.g. "Respond Manually").
// Set verdict to 'escalated' to see what people handed on instead.
// :param verdict => 'overridden'
// :param limit => 25
MATCH (d:Decision)-[r:REVIEWED]->(p:Proposal)
WHERE r.verdict = $verdict
OPTIONAL MATCH (d)-[:DECIDED_BY]->(a:Actor)
RETURN d.responded_at AS answered_at,
       d.subject AS subject,
       p.text AS ai_proposal,
       d.chosen_options AS chosen,
       d.reason AS why,
       coalesce(a.name, a.actor_id) AS decided_by,
       d.key AS key
ORDER BY d.responded_at DESC
LIMIT $limit
