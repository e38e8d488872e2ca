// Embedded store, words: how many answered decisions contain each query term (document frequency),
// their number and mean text length, for BM25 weights (Ladybug's FTS extension needs a download).
// {term_counts} is one `sum(CASE WHEN regexp_matches(d.search_text, $pN) THEN 1 ELSE 0 END) AS dfN`
// per term, generated from the number of terms (the terms themselves are parameters).
MATCH (d:Decision)
WHERE d.response_received = true
RETURN count(d) AS n, avg(size(d.search_text)) AS avg_len, {term_counts}
