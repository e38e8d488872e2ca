// Hashes of every forgotten key (the sync skips what they match).
MATCH (f:ForgottenKey)
RETURN f.key AS hash
