// Which of these keys are stored decisions.
UNWIND $keys AS k
MATCH (d:Decision {key: k})
RETURN d.key AS key
