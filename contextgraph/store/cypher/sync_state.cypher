// Where the last sync of one Airflow stopped (its watermarks).
MATCH (s:SyncState)
WHERE s.key = $key
RETURN s.runs_updated_at AS runs_updated_at, s.task_instances_updated_at AS task_instances_updated_at,
       s.hitl_created_at AS hitl_created_at, s.last_sync_at AS last_sync_at
