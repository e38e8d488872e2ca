// Embedded store: embeddings live in their own table (DecisionEmbedding, same key as the Decision),
// because Ladybug writes float lists fast with COPY into a table and very slowly with SET on nodes.
// The proposals the decision judged come along: they are part of the situation that is embedded.
MATCH (d:Decision)
OPTIONAL MATCH (e:DecisionEmbedding {key: d.key})
WITH d, e
WHERE e IS NULL OR e.embedding_model <> $model OR e.embedded_content_hash IS NULL
   OR e.embedded_content_hash <> d.content_hash
WITH d, e
LIMIT $limit
OPTIONAL MATCH (d)-[:REVIEWED]->(p:Proposal)
WITH d, e, collect(p.text) AS proposals
RETURN d.key AS key, d.search_text AS text, d.subject AS subject, d.body AS body, d.reason AS reason,
       proposals, d.content_hash AS content_hash, e.embedded_hash AS text_hash, e.embedding_model AS model
