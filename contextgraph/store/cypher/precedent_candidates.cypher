// Neo4j: one precedent search's candidates and what the ranking reads of them, in one round trip.
// 0. The pre-filter: when $seed names a filter with an index ('point': $dag_id and $task_id,
//    'dag', 'task', 'deployment'), the decisions it keeps, read through that index, at most
//    $scan_limit. Fewer than $scan_limit (`exact`): when $narrow_text (the store found the internal
//    full-text index `decision_scoped_text`), the words are searched there with $narrow_words (the
//    Lucene query of $words required to be of the filters' DAG, task and deployment, with boost 0:
//    the same BM25 scores); and when the vector index's answer kept fewer than $k, the vector list
//    is scored over those decisions instead, exactly (the cosine of each embedding, scaled as the
//    index scores it): not short. Else (or $seed null) step 1 alone.
// 1. The vector index `decision_embedding` (its $vector_fetch nearest to $vector, embeddings of
//    $model) and the full-text index `decision_text` (its $text_fetch best for the Lucene query
//    $words; english analyzer), each kept to the answered decisions passing the filters (the
//    narrowing ones first: a deep over-fetch reads one property of most rows), best first (only
//    the kept ones are sorted), at most $k each ($vector / $words null: that list is not
//    searched). Neither index can filter while it searches (Neo4j 5): `*_short` says a list kept
//    fewer than $k while its index returned all it was asked for (it may hold more that pass) and
//    less than $max_fetch; the caller then asks again with a larger fetch, and step 2 is skipped.
//    A narrowed word search too, for the filters it is not narrowed to (choice, time, exclusions).
// 2. For the candidates: the rows contextgraph.retrieval.supersede decides staleness
//    from (those of stale_decisions, stale_points, stale_newer_offers, retired_read and, when a
//    lesson is retired, stale_retired) and their stored usefulness (usefulness_read's columns).
CALL {
  CALL {
    UNWIND CASE WHEN $seed = 'point' THEN [1] ELSE [] END AS _
    MATCH (d:Decision) WHERE d.dag_id = $dag_id AND d.task_id = $task_id
    RETURN d
    UNION ALL
    UNWIND CASE WHEN $seed = 'dag' THEN [1] ELSE [] END AS _
    MATCH (d:Decision) WHERE d.dag_id = $dag_id
    RETURN d
    UNION ALL
    UNWIND CASE WHEN $seed = 'task' THEN [1] ELSE [] END AS _
    MATCH (d:Decision) WHERE d.task_id = $task_id
    RETURN d
    UNION ALL
    UNWIND CASE WHEN $seed = 'deployment' THEN [1] ELSE [] END AS _
    MATCH (d:Decision) WHERE d.deployment = $deployment
    RETURN d
  }
  WITH d LIMIT $scan_limit
  RETURN collect(d) AS pool
}
WITH pool, $seed IS NOT NULL AND size(pool) < $scan_limit AS exact
CALL {
  UNWIND CASE WHEN $vector IS NULL THEN [] ELSE [$vector] END AS v
  CALL db.index.vector.queryNodes('decision_embedding', $vector_fetch, v) YIELD node AS d, score
  WITH count(*) AS seen, collect(CASE
      WHEN ($dag_id IS NULL OR d.dag_id = $dag_id)
       AND ($task_id IS NULL OR d.task_id = $task_id)
       AND ($deployment IS NULL OR d.deployment = $deployment)
       AND ($chosen IS NULL OR $chosen IN d.chosen_options)
       AND ($since IS NULL OR coalesce(d.responded_at, d.created_at) >= $since)
       AND d.response_received = true AND d.embedding_model = $model
       AND NOT d.key IN $exclude
      THEN {key: d.key, score: score} END) AS kept
  CALL {
    WITH kept
    UNWIND kept AS h
    WITH h ORDER BY h.score DESC, h.key
    RETURN collect(h) AS ordered
  }
  RETURN ordered[..$k] AS vector_hits, size(kept) AS vector_kept,
         size(kept) < $k AND seen >= $vector_fetch AS vector_deeper
}
CALL {
  WITH pool, exact, vector_deeper
  UNWIND CASE WHEN exact AND vector_deeper THEN pool ELSE [] END AS d
  WITH d WHERE ($dag_id IS NULL OR d.dag_id = $dag_id)
       AND ($task_id IS NULL OR d.task_id = $task_id)
       AND ($deployment IS NULL OR d.deployment = $deployment)
       AND ($chosen IS NULL OR $chosen IN d.chosen_options)
       AND ($since IS NULL OR coalesce(d.responded_at, d.created_at) >= $since)
       AND d.response_received = true AND d.embedding_model = $model
       AND (size($exclude) = 0 OR NOT d.key IN $exclude)
  // the best 2k by score, then by key among equal scores (a key is read for those only)
  WITH d, vector.similarity.cosine(d.embedding, $vector) AS score
  ORDER BY score DESC LIMIT 2 * $k
  WITH d.key AS key, score
  ORDER BY score DESC, key LIMIT $k
  RETURN collect({key: key, score: score}) AS scanned
}
CALL {
  WITH exact
  UNWIND CASE WHEN $words IS NULL THEN []
              WHEN exact AND $narrow_text THEN [{index: 'decision_scoped_text', query: $narrow_words}]
              ELSE [{index: 'decision_text', query: $words}] END AS w
  CALL db.index.fulltext.queryNodes(w.index, w.query, {limit: $text_fetch}) YIELD node AS d, score
  WITH count(*) AS seen, collect(CASE
      WHEN ($dag_id IS NULL OR d.dag_id = $dag_id)
       AND ($task_id IS NULL OR d.task_id = $task_id)
       AND ($deployment IS NULL OR d.deployment = $deployment)
       AND ($chosen IS NULL OR $chosen IN d.chosen_options)
       AND ($since IS NULL OR coalesce(d.responded_at, d.created_at) >= $since)
       AND d.response_received = true
       AND NOT d.key IN $exclude
      THEN {key: d.key, score: score} END) AS kept
  CALL {
    WITH kept
    UNWIND kept AS h
    WITH h ORDER BY h.score DESC, h.key
    RETURN collect(h) AS ordered
  }
  RETURN ordered[..$k] AS text_hits, size(kept) AS text_kept, seen AS text_seen
}
WITH exact,
     CASE WHEN exact AND vector_deeper THEN scanned ELSE vector_hits END AS vector_hits,
     CASE WHEN exact AND vector_deeper THEN size(scanned) ELSE vector_kept END AS vector_kept,
     vector_deeper AND NOT exact AND $vector_fetch < $max_fetch AS vector_short,
     text_hits, text_kept, text_kept < $k AND text_seen >= $text_fetch AND $text_fetch < $max_fetch AS text_short
WITH *, CASE WHEN NOT (vector_short OR text_short)
          THEN [h IN vector_hits | h.key] + [h IN text_hits | h.key] ELSE [] END AS keys
// stale_decisions: the DAG version each candidate was made under
CALL {
  WITH keys
  UNWIND keys AS k
  WITH DISTINCT k
  MATCH (d:Decision {key: k})-[:UNDER_VERSION]->(v:DagVersion)
  RETURN collect({key: d.key, dag_id: d.dag_id, task_id: d.task_id, offered: d.offered,
                  version: v.version_number}) AS made
}
// stale_points: per decision point, its DAG's newest version and whether the task is still in it
CALL {
  WITH made
  UNWIND made AS m
  WITH m.dag_id AS dag_id, m.task_id AS task_id, min(m.version) AS version
  MATCH (t:Task {dag_id: dag_id, task_id: task_id})
  MATCH (:Dag {dag_id: dag_id})-[:VERSION_OF]->(w:DagVersion)
  WITH dag_id, task_id, version, t.in_latest_version AS in_latest, max(w.version_number) AS newest
  RETURN collect({dag_id: dag_id, task_id: task_id, version: version, in_latest: in_latest,
                  newest: newest}) AS points
}
// stale_newer_offers: at the points with a newer version, what decisions made under it offered
CALL {
  WITH points
  UNWIND points AS p
  WITH p WHERE p.newest > p.version
  MATCH (d:Decision {dag_id: p.dag_id, task_id: p.task_id})-[:UNDER_VERSION]->(v:DagVersion)
  WHERE v.version_number > p.version
  WITH DISTINCT p.dag_id AS dag_id, p.task_id AS task_id, v.version_number AS version, d.offered AS offered
  RETURN collect({dag_id: dag_id, task_id: task_id, version: version, offered: offered}) AS offers
}
// retired_read: the retired lessons, newest first (few)
CALL {
  MATCH (r:RetiredLesson)
  WITH r ORDER BY r.retired_at DESC
  RETURN collect(r {.key, .dag_id, .task_id, .decided, .why, .retired_by, .retired_at, .active,
                    .restored_by, .restored_at}) AS retirements
}
// stale_retired: the candidates' points, choices and answer times, when a lesson is retired
CALL {
  WITH keys, retirements
  UNWIND CASE WHEN any(r IN retirements WHERE r.active) THEN keys ELSE [] END AS k
  WITH DISTINCT k
  MATCH (d:Decision {key: k})
  RETURN collect({key: d.key, dag_id: d.dag_id, task_id: d.task_id, chosen_options: d.chosen_options,
                  responded_at: d.responded_at}) AS answered
}
// usefulness_read: the candidates' stored usefulness
CALL {
  WITH keys
  UNWIND keys AS k
  WITH DISTINCT k
  MATCH (u:PrecedentUsefulness {key: k})
  RETURN collect(u {.key, .shown, .approved, .overridden, .escalated, .score, .maybe_outdated}) AS usefulness
}
RETURN vector_hits, vector_kept, vector_short, text_hits, text_kept, text_short, exact,
       made, points, offers, retirements, answered, usefulness
