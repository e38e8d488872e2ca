// Retired lessons, newest first.
MATCH (r:RetiredLesson)
RETURN r.key AS key, r.dag_id AS dag_id, r.task_id AS task_id, r.decided AS decided, r.why AS why,
       r.retired_by AS retired_by, r.retired_at AS retired_at, r.active AS active,
       r.restored_by AS restored_by, r.restored_at AS restored_at
ORDER BY r.retired_at DESC
