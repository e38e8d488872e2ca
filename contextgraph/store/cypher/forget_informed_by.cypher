// INFORMED_BY edges touching these decisions (either end).
UNWIND $keys AS k
MATCH (a:Decision)-[i:INFORMED_BY]->(b:Decision)
WHERE a.key = k OR b.key = k
RETURN count(i) AS n
