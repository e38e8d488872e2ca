// Embedded store, words: BM25 (binary term frequency) over the decision text. Each term $pN is a
// case-insensitive regular expression, word start plus stem (so "cost" finds "costs"), weighted by
// its IDF $wN; {term_scores} adds one `CASE WHEN regexp_matches(d.search_text, $pN) THEN $wN
// ELSE 0.0 END` per term (generated from the number of terms; an UNWIND over the terms is 10x slower).
MATCH (d:Decision)
WHERE d.response_received = true
  AND ($dag_id = '' OR d.dag_id = $dag_id)
  AND ($task_id = '' OR d.task_id = $task_id)
  AND ($chosen = '' OR list_contains(d.chosen_options, $chosen))
  AND ($since_set = false OR coalesce(d.responded_at, d.created_at) >= $since)
  AND NOT list_contains($exclude, d.key)
WITH d, ({term_scores}) AS matched
WHERE matched > 0
WITH d, matched * ($k1 + 1.0) / (1.0 + $k1 * (1.0 - $b + $b * size(d.search_text) / $avg_len)) AS score
RETURN d.key AS key, score
ORDER BY score DESC, key
LIMIT $fetch
