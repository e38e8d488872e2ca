// Neo4j, precedent candidates by words: the full-text index `decision_text` over each decision's
// search text (english analyzer; $words is a Lucene query of escaped words), answered decisions
// passing the filters, best first.
CALL db.index.fulltext.queryNodes('decision_text', $words, {limit: $fetch}) YIELD node, score
WITH node AS d, score
WHERE d.response_received = true
  AND ($deployment IS NULL OR d.deployment = $deployment)
  AND ($dag_id IS NULL OR d.dag_id = $dag_id)
  AND ($task_id IS NULL OR d.task_id = $task_id)
  AND ($chosen IS NULL OR $chosen IN d.chosen_options)
  AND ($since IS NULL OR coalesce(d.responded_at, d.created_at) >= $since)
  AND NOT d.key IN $exclude
RETURN d.key AS key, score
ORDER BY score DESC, key
LIMIT $k
