// Embedded store: what its BM25 and vector index beside the file hold (EmbeddedStore.refresh_indexes):
// every answered decision's situation (subject, body, the proposals it judged), decision point,
// choice, answer time and embedding. A page at a time, in key order after $after: the whole result
// at once (100k decisions with their embeddings) filled a 1 GB buffer pool.
MATCH (d:Decision)
WHERE d.response_received = true AND d.key > $after
WITH d
ORDER BY d.key
LIMIT $limit
OPTIONAL MATCH (e:DecisionEmbedding {key: d.key})
OPTIONAL MATCH (d)-[:REVIEWED]->(p:Proposal)
WITH d, e, collect(p.text) AS proposals
RETURN d.key AS key, d.subject AS subject, d.body AS body, proposals, d.search_text AS text,
       d.dag_id AS dag_id, d.task_id AS task_id, d.chosen_options AS chosen,
       coalesce(d.responded_at, d.created_at) AS answered_at,
       e.embedding_model AS model, e.embedding AS embedding
ORDER BY key
