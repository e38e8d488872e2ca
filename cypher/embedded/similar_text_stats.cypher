// Embedded store, words: document frequency of each query term among answered decisions, and the
// collection size and mean text length, for BM25 weights (Ladybug's FTS extension needs a download).
MATCH (d:Decision)
WHERE d.response_received = true
UNWIND range(1, size($patterns)) AS i
WITH i, d, CASE WHEN regexp_matches(lower(d.search_text), $patterns[i]) THEN 1 ELSE 0 END AS hit
RETURN i AS term, sum(hit) AS df, count(d) AS n, avg(size(d.search_text)) AS avg_len
ORDER BY term
