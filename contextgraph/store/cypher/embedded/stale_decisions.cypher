// Embedded: the DAG version each of these decisions was made under (contextgraph.supersede). The
// decisions are found by key first (a primary-key lookup), then their version: written as one
// pattern, the embedded engine hash-joins every UNDER_VERSION edge of the store (9 vs 1.3 ms
// median for 60 keys at 20k decisions, 40-57 ms at 100k). A decision without a version is not
// returned.
UNWIND $keys AS k
MATCH (d:Decision {key: k})
OPTIONAL MATCH (d)-[:UNDER_VERSION]->(v:DagVersion)
WITH d, v WHERE v IS NOT NULL
RETURN d.key AS key, d.dag_id AS dag_id, d.task_id AS task_id, d.offered AS offered,
       v.version_number AS version
