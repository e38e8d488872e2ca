// Which of these decision keys are stored.
UNWIND $keys AS k MATCH (d:Decision {key: k}) RETURN d.key AS key
