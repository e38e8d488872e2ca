// Who decided each precedent.
UNWIND $keys AS k
MATCH (d:Decision {key: k})-[:DECIDED_BY]->(a:Actor)
RETURN d.key AS key, a.name AS actor_name, a.actor_id AS actor_id, a.kind AS actor_kind
ORDER BY key, actor_id
