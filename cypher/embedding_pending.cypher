// Decisions whose embedding is missing, from another model, or older than the decision itself
// (the caller compares the text hash, so a change elsewhere in the decision costs no re-embedding).
MATCH (d:Decision)
WHERE d.embedding IS NULL
   OR d.embedding_model IS NULL OR d.embedding_model <> $model
   OR d.embedded_content_hash IS NULL OR d.embedded_content_hash <> d.content_hash
RETURN d.key AS key, d.search_text AS text, d.subject AS subject, d.body AS body, d.reason AS reason,
       d.content_hash AS content_hash, d.embedded_hash AS text_hash, d.embedding_model AS model
LIMIT $limit
