// The earlier decisions an agent showed as precedent when this one was decided.
MATCH (d:Decision {key: $key})-[r:INFORMED_BY]->(p:Decision)
RETURN p.key AS key, p.dag_id AS dag_id, p.run_id AS run_id, p.task_id AS task_id,
       p.subject AS subject, p.chosen_options AS chosen_options, p.reason AS reason,
       r.rank AS rank, r.score AS score, r.recorded_at AS recorded_at
ORDER BY rank, key
