// The text did not change: the stored embedding is current for this version of the decision.
UNWIND $rows AS row
MATCH (d:Decision {key: row.key})
SET d.embedded_hash = row.text_hash, d.embedded_content_hash = row.content_hash
RETURN count(d) AS written
