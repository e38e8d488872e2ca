// Neo4j, precedent candidates by meaning: the vector index `decision_embedding` (embeddings of the
// current $model only), answered decisions passing the filters, best first. The index cannot filter
// while it searches (Neo4j 5), so the caller asks for $fetch >= $k and the filters run on those.
CALL db.index.vector.queryNodes('decision_embedding', $fetch, $vector) YIELD node, score
WITH node AS d, score
WHERE d.response_received = true AND d.embedding_model = $model
  AND ($deployment IS NULL OR d.deployment = $deployment)
  AND ($dag_id IS NULL OR d.dag_id = $dag_id)
  AND ($task_id IS NULL OR d.task_id = $task_id)
  AND ($chosen IS NULL OR $chosen IN d.chosen_options)
  AND ($since IS NULL OR coalesce(d.responded_at, d.created_at) >= $since)
  AND NOT d.key IN $exclude
RETURN d.key AS key, score
ORDER BY score DESC, key
LIMIT $k
