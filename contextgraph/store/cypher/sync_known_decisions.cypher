// Which of these decisions (by key) the graph already holds.
UNWIND $keys AS k
MATCH (d:Decision)
WHERE d.key = k
RETURN d.key AS key
