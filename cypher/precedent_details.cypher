// What an agent is shown of each precedent: the question, the choice and why, and when. The
// reviewer and the AI proposal come from precedent_reviewers / precedent_proposals (plain MATCHes:
// on the embedded engine an OPTIONAL MATCH per key costs several times more).
UNWIND $keys AS k
MATCH (d:Decision {key: k})
RETURN d.key AS key, d.deployment AS deployment, d.dag_id AS dag_id, d.run_id AS run_id, d.task_id AS task_id,
       d.map_index AS map_index, d.try_number AS try_number, d.subject AS subject,
       d.chosen_options AS chosen_options, d.reason AS reason, d.responded_by AS responded_by,
       d.responded_at AS responded_at, d.created_at AS created_at
