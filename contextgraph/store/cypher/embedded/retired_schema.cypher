// Retired lessons (contextgraph.supersede) for the embedded engine.
CREATE NODE TABLE IF NOT EXISTS RetiredLesson(key STRING PRIMARY KEY, dag_id STRING, task_id STRING, decided STRING, why STRING, retired_by STRING, retired_at TIMESTAMP, active BOOLEAN, restored_by STRING, restored_at TIMESTAMP);
