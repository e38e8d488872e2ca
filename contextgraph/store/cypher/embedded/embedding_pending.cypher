// Embedded store: embeddings live in their own table (DecisionEmbedding, same key as the Decision),
// because Ladybug writes float lists fast with COPY into a table and very slowly with SET on nodes.
// $keys are the decisions found pending (EmbeddedStore.decisions_needing_embedding: joining the two
// tables in one pattern filled a 512 MB buffer pool at ~86k decisions); each is read by key. The
// proposals the decision judged come along: they are part of the situation that is embedded.
UNWIND $keys AS k
MATCH (d:Decision {key: k})
OPTIONAL MATCH (e:DecisionEmbedding {key: k})
OPTIONAL MATCH (d)-[:REVIEWED]->(p:Proposal)
WITH d, e, collect(p.text) AS proposals
RETURN d.key AS key, d.search_text AS text, d.subject AS subject, d.body AS body, d.reason AS reason,
       proposals, d.content_hash AS content_hash, e.embedded_hash AS text_hash, e.embedding_model AS model
