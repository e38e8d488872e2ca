// Store embeddings on the decisions (float32 via the vector procedure) with what they were made of,
// and the situation text they were made from (the full-text index `decision_text` covers it).
UNWIND $rows AS row
MATCH (d:Decision {key: row.key})
CALL db.create.setNodeVectorProperty(d, 'embedding', row.vector)
SET d.embedding_model = $model, d.embedded_hash = row.text_hash, d.embedded_content_hash = row.content_hash,
    d.situation_text = row.text
RETURN count(d) AS written
