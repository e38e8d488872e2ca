// The Airflow URL a version-1 graph was synced from (its one SyncState), for its Deployment node.
MATCH (s:SyncState)
RETURN s.source AS source
LIMIT 1
