// Per precedent: the verdicts of the later drafts it informed (INFORMED_BY from the later decision,
// REVIEWED verdict of that decision's proposal; a decision without a proposal counts as unknown).
MATCH (later:Decision)-[:INFORMED_BY]->(p:Decision)
OPTIONAL MATCH (later)-[r:REVIEWED]->(:Proposal)
RETURN p.key AS key, later.key AS later, r.verdict AS verdict
