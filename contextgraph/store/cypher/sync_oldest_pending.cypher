// The oldest decision of one deployment still waiting for an answer: HITL details are re-read from there. A review
// whose task ended without an answer is closed (status expired/failed/…) and no longer holds it.
MATCH (d:Decision)
WHERE d.deployment = $deployment AND d.response_received = false AND coalesce(d.status, 'pending') = 'pending'
RETURN min(d.created_at) AS oldest
