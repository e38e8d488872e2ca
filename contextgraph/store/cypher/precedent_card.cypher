// Neo4j: what an agent is shown of each precedent, in one round trip: the question, the choice and
// why, when, who decided and the AI proposal(s) it judged with the verdict on each, and, when
// $model is given, the decision's embedding of that model (the ranking's diversity reads it for
// the head of the ranking in the same round trip). One row per (proposal, reviewer) pair;
// decision_details folds them.
UNWIND $keys AS k
MATCH (d:Decision {key: k})
OPTIONAL MATCH (d)-[r:REVIEWED]->(p:Proposal)
OPTIONAL MATCH (d)-[:DECIDED_BY]->(a:Actor)
RETURN d.key AS key, d.deployment AS deployment, d.dag_id AS dag_id, d.run_id AS run_id, d.task_id AS task_id,
       d.map_index AS map_index, d.try_number AS try_number, d.subject AS subject,
       d.chosen_options AS chosen_options, d.reason AS reason, d.responded_by AS responded_by,
       d.responded_at AS responded_at, d.created_at AS created_at,
       p.text AS proposal, r.verdict AS verdict,
       a.name AS actor_name, a.actor_id AS actor_id, a.kind AS actor_kind,
       CASE WHEN $model IS NOT NULL AND d.embedding_model = $model THEN d.embedding END AS vector
