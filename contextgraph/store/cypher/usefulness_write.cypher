// Replace the stored usefulness of these precedents.
UNWIND $rows AS row
MERGE (u:PrecedentUsefulness {key: row.key})
SET u.shown = row.shown, u.approved = row.approved, u.overridden = row.overridden,
    u.escalated = row.escalated, u.score = row.score, u.maybe_outdated = row.maybe_outdated, u.at = row.at
