// The graph's salt for hashing forgotten keys: made once, then read.
MERGE (s:GraphSalt {key: 'salt'})
ON CREATE SET s.salt = $salt
RETURN s.salt AS salt
