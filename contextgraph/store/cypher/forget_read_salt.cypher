// The graph's salt for hashing forgotten keys (no row: nothing was ever forgotten).
MATCH (s:GraphSalt {key: 'salt'})
RETURN s.salt AS salt
