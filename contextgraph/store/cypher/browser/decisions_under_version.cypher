// Decisions made under one version of a DAG's code, newest first.
// Each HITL detail names the DAG version its task ran under (Airflow 3's dag_version); compare what
// reviewers chose before and after a change of the prompt or the code.
// :param dag_id => 'ai_support_ticket_system'
// :param version => 2
MATCH (:Dag {dag_id: $dag_id})-[:VERSION_OF]->(v:DagVersion {version_number: $version})
MATCH (d:Decision)-[:UNDER_VERSION]->(v)
RETURN v.version_number AS version,
       v.bundle_version AS bundle_version,
       d.task_id AS task,
       d.subject AS subject,
       d.chosen_options AS chosen,
       d.reason AS reason,
       d.key AS key
ORDER BY d.created_at DESC
LIMIT 100
