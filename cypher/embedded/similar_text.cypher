// Embedded store, words: BM25 over the decision text. Each term is a regular expression (word start
// plus stem, so "cost" finds "costs"); $weights are the terms' IDF, $avg_len the mean text length.
MATCH (d:Decision)
WHERE d.response_received = true
  AND ($dag_id = '' OR d.dag_id = $dag_id)
  AND ($task_id = '' OR d.task_id = $task_id)
  AND ($chosen = '' OR list_contains(d.chosen_options, $chosen))
  AND ($since_set = false OR coalesce(d.responded_at, d.created_at) >= $since)
  AND NOT list_contains($exclude, d.key)
UNWIND range(1, size($patterns)) AS i
WITH d, i, CAST(size(regexp_extract_all(lower(d.search_text), $patterns[i])) AS DOUBLE) AS tf
WITH d, sum(CASE WHEN tf > 0 THEN $weights[i] * tf * ($k1 + 1.0)
                 / (tf + $k1 * (1.0 - $b + $b * size(d.search_text) / $avg_len)) ELSE 0.0 END) AS score
WHERE score > 0
RETURN d.key AS key, score
ORDER BY score DESC, key
LIMIT $fetch
