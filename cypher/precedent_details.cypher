// What an agent is shown of each precedent: the question, the choice and why, who decided, and
// the AI proposal it judged with the verdict. One row per proposal and reviewer (the caller folds).
UNWIND $keys AS k
MATCH (d:Decision {key: k})
OPTIONAL MATCH (d)-[r:REVIEWED]->(p:Proposal)
OPTIONAL MATCH (d)-[:DECIDED_BY]->(a:Actor)
RETURN d.key AS key, d.dag_id AS dag_id, d.run_id AS run_id, d.task_id AS task_id,
       d.map_index AS map_index, d.try_number AS try_number, d.subject AS subject,
       d.chosen_options AS chosen_options, d.reason AS reason, d.responded_by AS responded_by,
       d.responded_at AS responded_at, d.created_at AS created_at,
       a.name AS actor_name, a.actor_id AS actor_id, a.kind AS actor_kind,
       p.text AS proposal, r.verdict AS verdict
