// The oldest decision still waiting for an answer: HITL details are re-read from there.
MATCH (d:Decision)
WHERE d.response_received = false
RETURN min(d.created_at) AS oldest
