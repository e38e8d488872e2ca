// The states of the task instances a branching decision point may have run, for a page of
// decisions at once: per run (its key), the children's task ids. The run is found by key, then
// its task instances (no scan of every task instance; a query per decision was half of a 10k sync).
UNWIND $runs AS r
MATCH (run:DagRun {key: r.key})
OPTIONAL MATCH (run)-[:HAS_INSTANCE]->(ti:TaskInstance)
WITH r, ti
WHERE ti IS NOT NULL AND ti.task_id IN r.task_ids
RETURN r.key AS run_key, ti.task_id AS task_id, ti.state AS state
