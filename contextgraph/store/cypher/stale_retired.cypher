// Point, choice and answer time of these decisions (for retired lessons).
UNWIND $keys AS k
MATCH (d:Decision {key: k})
RETURN d.key AS key, d.dag_id AS dag_id, d.task_id AS task_id, d.chosen_options AS chosen_options,
       d.responded_at AS responded_at
