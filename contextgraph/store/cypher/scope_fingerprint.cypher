// What changes when the graph is written: decision count, INFORMED_BY count, last sync.
MATCH (d:Decision)
WITH count(d) AS decisions
OPTIONAL MATCH (:Decision)-[i:INFORMED_BY]->(:Decision)
WITH decisions, count(i) AS informed
OPTIONAL MATCH (s:SyncState)
RETURN decisions, informed, max(s.last_sync_at) AS synced
