// contextgraph schema for Neo4j 5 — applied by `contextgraph schema` (idempotent).
// One uniqueness constraint per node kind on its natural key, plus the indexes precedent search uses.
CREATE CONSTRAINT dag_key IF NOT EXISTS FOR (n:Dag) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT task_key IF NOT EXISTS FOR (n:Task) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT dag_run_key IF NOT EXISTS FOR (n:DagRun) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT task_instance_key IF NOT EXISTS FOR (n:TaskInstance) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT decision_key IF NOT EXISTS FOR (n:Decision) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT option_key IF NOT EXISTS FOR (n:Option) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT actor_key IF NOT EXISTS FOR (n:Actor) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT proposal_key IF NOT EXISTS FOR (n:Proposal) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT sync_state_key IF NOT EXISTS FOR (n:SyncState) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT dag_version_key IF NOT EXISTS FOR (n:DagVersion) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT answer_key IF NOT EXISTS FOR (n:Answer) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT deployment_key IF NOT EXISTS FOR (n:Deployment) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT schema_version_key IF NOT EXISTS FOR (n:SchemaVersion) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT asset_key IF NOT EXISTS FOR (n:Asset) REQUIRE n.key IS UNIQUE;
// Filters of precedent search.
CREATE INDEX decision_point IF NOT EXISTS FOR (n:Decision) ON (n.dag_id, n.task_id);
CREATE INDEX decision_deployment IF NOT EXISTS FOR (n:Decision) ON (n.deployment);
CREATE INDEX decision_dag IF NOT EXISTS FOR (n:Decision) ON (n.dag_id);
CREATE INDEX decision_task IF NOT EXISTS FOR (n:Decision) ON (n.task_id);
CREATE INDEX decision_created IF NOT EXISTS FOR (n:Decision) ON (n.created_at);
CREATE INDEX decision_pending IF NOT EXISTS FOR (n:Decision) ON (n.response_received);
// Words: each decision's situation (what was asked, the request as shown without its marked
// precedent section, the AI proposal), as the embedding pass writes it to `situation_text`: what a
// new case is matched against; the outcome (choice, reason) is shown, not matched. The english
// analyzer stems words ("refunds" matches "refund"). An index made by an older version (on other
// properties) is dropped by Neo4jStore.ensure_schema before this runs. Agents and users query it
// with their own Cypher: it covers situation_text only.
CREATE FULLTEXT INDEX decision_text IF NOT EXISTS
FOR (n:Decision) ON EACH [n.situation_text]
OPTIONS {indexConfig: {`fulltext.analyzer`: 'english'}};
// Internal to contextgraph's precedent search (precedent_candidates.cypher), not for agents: the
// same words with the DAG, task and deployment, so that a search narrowed to a filter is narrowed
// inside the index (filter clauses of boost 0: the BM25 scores are decision_text's). Without it
// (a graph set up by an older version) the search is not narrowed in the index.
CREATE FULLTEXT INDEX decision_scoped_text IF NOT EXISTS
FOR (n:Decision) ON EACH [n.situation_text, n.dag_id, n.task_id, n.deployment]
OPTIONS {indexConfig: {`fulltext.analyzer`: 'english'}};
// Meaning: the decision text's embedding; $dimensions comes from the configured model.
CREATE VECTOR INDEX decision_embedding IF NOT EXISTS
FOR (n:Decision) ON n.embedding
OPTIONS {indexConfig: {`vector.dimensions`: $dimensions, `vector.similarity_function`: 'cosine'}};
