// Embedded store: what its BM25 index and filters beside the file hold (EmbeddedStore.refresh_indexes):
// each answered decision's situation (subject, body, the proposals it judged), decision point,
// choice and answer time; its embedding comes from index_vectors. $keys are a page of the answered
// decisions' keys (index_state), each read by key: pages found by `d.key > $after ORDER BY d.key`
// scanned and sorted every decision for each page, and the embeddings joined in the same pattern
// were scanned for each page.
UNWIND $keys AS k
MATCH (d:Decision {key: k})
OPTIONAL MATCH (d)-[:REVIEWED]->(p:Proposal)
WITH d, collect(p.text) AS proposals
RETURN d.key AS key, d.subject AS subject, d.body AS body, proposals, d.search_text AS text,
       d.dag_id AS dag_id, d.task_id AS task_id, d.chosen_options AS chosen,
       coalesce(d.responded_at, d.created_at) AS answered_at
ORDER BY key
