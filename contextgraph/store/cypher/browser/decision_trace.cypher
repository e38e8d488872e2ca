// The full trace of one decision, as a graph: DAG → run → task instance that asked → decision,
// the options offered and the one chosen, who decided, the AI proposal judged (and the task
// instance that produced it), the decision point, and the precedents shown to the reviewer.
// :param key => 'ai_support_ticket_system|demo__2026-11-08T14:34:00Z|review_response|-1|1'
MATCH asked = (:Dag)-[:HAS_RUN]->(:DagRun)-[:HAS_INSTANCE]->(:TaskInstance)-[:ASKED]->(d:Decision {key: $key})
OPTIONAL MATCH point = (d)-[:AT_POINT]->(:Task)
OPTIONAL MATCH offered = (d)-[:OFFERED]->(:Option)
OPTIONAL MATCH chose = (d)-[:CHOSE]->(:Option)
OPTIONAL MATCH decided = (d)-[:DECIDED_BY]->(:Actor)
OPTIONAL MATCH judged = (d)-[:REVIEWED]->(:Proposal)-[:PRODUCED_BY]->(:TaskInstance)
OPTIONAL MATCH informed = (d)-[:INFORMED_BY]->(:Decision)
RETURN asked, point, collect(DISTINCT offered) AS offered, collect(DISTINCT chose) AS chose,
       collect(DISTINCT decided) AS decided, collect(DISTINCT judged) AS judged,
       collect(DISTINCT informed) AS informed
