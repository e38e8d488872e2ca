// Retire a lesson (or retire it again: the newest reason and time win).
MERGE (r:RetiredLesson {key: $row.key})
SET r.dag_id = $row.dag_id, r.task_id = $row.task_id, r.decided = $row.decided, r.why = $row.why,
    r.retired_by = $row.retired_by, r.retired_at = $row.retired_at, r.active = true,
    r.restored_by = NULL, r.restored_at = NULL
RETURN r.key AS key
