// Every (decision point, choice) answered decisions made: what a lesson id can name.
MATCH (d:Decision)
WHERE d.response_received = true
RETURN DISTINCT d.dag_id AS dag_id, d.task_id AS task_id, d.chosen_options AS chosen_options
