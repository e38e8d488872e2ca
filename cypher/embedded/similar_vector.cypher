// Embedded store, meaning: exact cosine similarity over every answered decision that passes the
// filters (a brute-force scan: 20k x 256 floats in ~0.2 s). {dimensions} is the model's width.
// Cosine first over the embedding table, then the join to the decisions (2x faster than joining
// first). Ladybug types a null parameter as BOOL, so "no filter" is '' ($since_set, [''] for
// $exclude) rather than null.
MATCH (e:DecisionEmbedding)
WHERE e.embedding_model = $model
WITH e, array_cosine_similarity(CAST(e.embedding AS FLOAT[{dimensions}]), CAST($vector AS FLOAT[{dimensions}])) AS score
MATCH (d:Decision)
WHERE d.key = e.key AND d.response_received = true
  AND ($dag_id = '' OR d.dag_id = $dag_id)
  AND ($task_id = '' OR d.task_id = $task_id)
  AND ($chosen = '' OR list_contains(d.chosen_options, $chosen))
  AND ($since_set = false OR coalesce(d.responded_at, d.created_at) >= $since)
  AND NOT list_contains($exclude, d.key)
RETURN d.key AS key, score
ORDER BY score DESC, key
LIMIT $fetch
