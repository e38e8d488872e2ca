// Decisions whose embedding is missing, from another model, or older than the decision itself
// (the caller compares the text hash, so a change elsewhere in the decision costs no re-embedding),
// with the proposals they judged: part of the situation that is embedded and indexed.
MATCH (d:Decision)
WHERE d.embedding IS NULL
   OR d.embedding_model IS NULL OR d.embedding_model <> $model
   OR d.embedded_content_hash IS NULL OR d.embedded_content_hash <> d.content_hash
WITH d
LIMIT $limit
OPTIONAL MATCH (d)-[:REVIEWED]->(p:Proposal)
WITH d, collect(p.text) AS proposals
RETURN d.key AS key, d.search_text AS text, d.subject AS subject, d.body AS body, d.reason AS reason,
       proposals, d.content_hash AS content_hash, d.embedded_hash AS text_hash, d.embedding_model AS model
