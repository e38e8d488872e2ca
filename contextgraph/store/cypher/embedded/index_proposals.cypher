// Embedded: the content hash of each proposal an answered decision reviewed (narrow): a proposal's
// text is part of the decision's indexed situation (EmbeddedStore._index_state).
MATCH (d:Decision)-[:REVIEWED]->(p:Proposal)
WHERE d.response_received = true
RETURN d.key AS key, p.content_hash AS content_hash
