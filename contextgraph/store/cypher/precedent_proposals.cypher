// The AI proposals the precedents judged, with the human's verdict on each.
UNWIND $keys AS k
MATCH (d:Decision {key: k})-[r:REVIEWED]->(p:Proposal)
RETURN d.key AS key, p.text AS proposal, r.verdict AS verdict
ORDER BY key, proposal
