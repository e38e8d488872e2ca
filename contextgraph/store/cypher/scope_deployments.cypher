// The deployments the stored decisions record.
MATCH (d:Decision) RETURN DISTINCT d.deployment AS deployment
