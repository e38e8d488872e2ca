// The precedents that informed a decision: the earlier decisions an agent showed the reviewer
// (INFORMED_BY, with rank and score), each with what was chosen there. Shown as a graph.
// :param key => 'ai_support_ticket_system|demo__2026-11-08T14:34:00Z|review_response|-1|1'
MATCH (d:Decision {key: $key})
MATCH shown = (d)-[:INFORMED_BY]->(p:Decision)
OPTIONAL MATCH chose = (p)-[:CHOSE]->(:Option)
OPTIONAL MATCH decided = (d)-[:CHOSE]->(:Option)
RETURN shown, chose, decided
ORDER BY relationships(shown)[0].rank
