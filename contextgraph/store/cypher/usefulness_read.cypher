// Stored usefulness of these precedents.
UNWIND $keys AS k
MATCH (u:PrecedentUsefulness {key: k})
RETURN u.key AS key, u.shown AS shown, u.approved AS approved, u.overridden AS overridden,
       u.escalated AS escalated, u.score AS score, u.maybe_outdated AS maybe_outdated
