// An actor's node keys and the decisions that name it (DECIDED_BY, responded_by, assigned_users).
MATCH (d:Decision)
WHERE d.responded_by = $actor_id OR $actor_id IN d.assigned_users
RETURN d.key AS key
UNION
MATCH (d:Decision)-[:DECIDED_BY]->(a:Actor)
WHERE a.actor_id = $actor_id
RETURN d.key AS key
