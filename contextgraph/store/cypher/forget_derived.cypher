// What hangs off these decisions: proposals, their runs, INFORMED_BY edges either way.
UNWIND $keys AS k
MATCH (d:Decision {key: k})
OPTIONAL MATCH (d)-[:REVIEWED]->(p:Proposal)
OPTIONAL MATCH (r:DagRun)-[:HAS_INSTANCE]->(:TaskInstance)-[:ASKED]->(d)
RETURN d.key AS key, collect(DISTINCT p.key) AS proposals, collect(DISTINCT r.key) AS runs
