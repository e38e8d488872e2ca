// The Actor nodes of one actor id (any kind).
MATCH (a:Actor)
WHERE a.actor_id = $actor_id
RETURN a.key AS key
