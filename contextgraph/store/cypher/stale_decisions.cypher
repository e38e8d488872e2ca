// The DAG version each of these decisions was made under, with what it offered and chose and when
// (contextgraph.supersede). A decision without a version is not returned (plain MATCH: cheaper on
// the embedded engine than an OPTIONAL MATCH per key).
UNWIND $keys AS k
MATCH (d:Decision {key: k})-[:UNDER_VERSION]->(v:DagVersion)
RETURN d.key AS key, d.dag_id AS dag_id, d.task_id AS task_id, d.offered AS offered,
       v.version_number AS version
