// Precedent search on Neo4j. Two ranked candidate lists, each cut to the filters:
//   meaning - the vector index `decision_embedding` (only embeddings of the current model),
//   words   - the full-text index `decision_text` (a Lucene query built from escaped terms),
// fused ($relative) by relative-score fusion: each signal's scores scaled to 0..1 over its
// candidates (vector min-max, words score/best) and weighted, or else by reciprocal-rank fusion
// wv/(c + vector rank) + wt/(c + text rank); plus a bonus at the preferred decision point.
// Only answered decisions are precedents. The vector index cannot filter while it searches
// (Neo4j 5), so $fetch over-fetches and the filters run on its candidates.
CALL {
  CALL db.index.vector.queryNodes('decision_embedding', $fetch, $vector) YIELD node, score
  WITH node AS d, score
  WHERE d.response_received = true AND d.embedding_model = $model
    AND ($dag_id IS NULL OR d.dag_id = $dag_id)
    AND ($task_id IS NULL OR d.task_id = $task_id)
    AND ($chosen IS NULL OR $chosen IN d.chosen_options)
    AND ($since IS NULL OR coalesce(d.responded_at, d.created_at) >= $since)
    AND NOT d.key IN $exclude
  WITH collect(d) AS found, collect(score) AS scores
  UNWIND range(0, size(found) - 1) AS i
  WITH found[i] AS d, i + 1 AS rank, scores[i] AS score, scores[0] AS hi, scores[size(scores) - 1] AS lo
  RETURN d, rank AS vrank, score AS vscore, CASE WHEN hi > lo THEN (score - lo) / (hi - lo) ELSE 1.0 END AS vnorm,
         null AS trank, null AS tscore, null AS tnorm
  UNION ALL
  CALL db.index.fulltext.queryNodes('decision_text', $words, {limit: $fetch}) YIELD node, score
  WITH node AS d, score
  WHERE d.response_received = true
    AND ($dag_id IS NULL OR d.dag_id = $dag_id)
    AND ($task_id IS NULL OR d.task_id = $task_id)
    AND ($chosen IS NULL OR $chosen IN d.chosen_options)
    AND ($since IS NULL OR coalesce(d.responded_at, d.created_at) >= $since)
    AND NOT d.key IN $exclude
  WITH collect(d) AS found, collect(score) AS scores
  UNWIND range(0, size(found) - 1) AS i
  WITH found[i] AS d, i + 1 AS rank, scores[i] AS score, scores[0] AS hi
  RETURN d, null AS vrank, null AS vscore, null AS vnorm,
         rank AS trank, score AS tscore, CASE WHEN hi > 0 THEN score / hi ELSE 0.0 END AS tnorm
}
WITH d, min(vrank) AS vrank, max(vscore) AS vscore, max(vnorm) AS vnorm,
     min(trank) AS trank, max(tscore) AS tscore, max(tnorm) AS tnorm
WITH d, vrank, vscore, vnorm, trank, tscore, tnorm,
     coalesce(d.dag_id = $point_dag AND d.task_id = $point_task, false) AS same_point
WITH d, vrank, vscore, trank, tscore, same_point,
     CASE WHEN $relative
       THEN $vector_weight * coalesce(vnorm, 0.0) + $text_weight * coalesce(tnorm, 0.0)
       ELSE coalesce($vector_weight / ($rrf_k + vrank), 0.0) + coalesce($text_weight / ($rrf_k + trank), 0.0)
     END + CASE WHEN same_point THEN $point_weight ELSE 0.0 END AS score
WHERE (vrank IS NOT NULL AND $vector_weight > 0) OR (trank IS NOT NULL AND $text_weight > 0)
RETURN d.key AS key, score, vrank, vscore, trank, tscore, same_point
ORDER BY score DESC, key
LIMIT $k
