// Every decision's own texts and those of its proposals and its run's conf (for --customer).
MATCH (d:Decision)
OPTIONAL MATCH (d)-[:REVIEWED]->(p:Proposal)
OPTIONAL MATCH (r:DagRun)-[:HAS_INSTANCE]->(:TaskInstance)-[:ASKED]->(d)
RETURN d.key AS key, d.subject AS subject, d.body AS body, d.params AS params,
       d.params_input AS params_input, d.reason AS reason, d.search_text AS search_text,
       collect(p.text) AS proposals, collect(p.value) AS values, collect(r.conf) AS confs
