// How many erasures the graph has seen (a forget invalidates scoped views).
MATCH (a:ForgetAudit)
RETURN count(a) AS n
