// The text did not change: the stored embedding is current for this version of the decision.
UNWIND $rows AS row
MATCH (e:DecisionEmbedding {key: row.key})
SET e.embedded_hash = row.text_hash, e.embedded_content_hash = row.content_hash
RETURN count(e) AS written
