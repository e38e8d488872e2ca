// Un-retire a lesson: its record stays, inactive, with who restored it and when.
MATCH (r:RetiredLesson {key: $key})
WHERE r.active = true
SET r.active = false, r.restored_by = $by, r.restored_at = $at
RETURN r.key AS key
