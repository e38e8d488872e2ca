// Embedded store, meaning: exact cosine similarity over every answered decision that passes the
// filters (a brute-force scan; 20k x 384 floats take ~50 ms). {dimensions} is the model's width.
// Ladybug types a null parameter as BOOL, so "no filter" is '' (and $since_set, [''] for $exclude).
MATCH (d:Decision), (e:DecisionEmbedding)
WHERE e.key = d.key AND e.embedding_model = $model AND d.response_received = true
  AND ($dag_id = '' OR d.dag_id = $dag_id)
  AND ($task_id = '' OR d.task_id = $task_id)
  AND ($chosen = '' OR list_contains(d.chosen_options, $chosen))
  AND ($since_set = false OR coalesce(d.responded_at, d.created_at) >= $since)
  AND NOT list_contains($exclude, d.key)
WITH d, array_cosine_similarity(CAST(e.embedding AS FLOAT[{dimensions}]), CAST($vector AS FLOAT[{dimensions}])) AS score
RETURN d.key AS key, score
ORDER BY score DESC, key
LIMIT $fetch
