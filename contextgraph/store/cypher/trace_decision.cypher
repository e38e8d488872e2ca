// One decision in full: what was asked, offered and chosen, why and by whom, and the AI proposals
// it judged (with the verdict). One row per proposal and reviewer (the caller folds them).
MATCH (d:Decision {key: $key})
OPTIONAL MATCH (d)-[r:REVIEWED]->(p:Proposal)
OPTIONAL MATCH (d)-[:DECIDED_BY]->(a:Actor)
RETURN d.key AS key, d.deployment AS deployment, d.dag_id AS dag_id, d.run_id AS run_id, d.task_id AS task_id,
       d.map_index AS map_index, d.try_number AS try_number, d.subject AS subject, d.body AS body,
       d.offered AS offered, d.chosen_options AS chosen_options, d.reason AS reason,
       d.responded_by AS responded_by, d.created_at AS created_at, d.responded_at AS responded_at,
       d.response_received AS response_received, d.timed_out AS timed_out,
       d.upstream_task_ids AS upstream_task_ids,
       a.name AS actor_name, a.actor_id AS actor_id, a.kind AS actor_kind,
       p.task_id AS proposal_task_id, p.text AS proposal, r.verdict AS verdict
