// When precedents were first recorded for this decision (null: never).
MATCH (:Decision {key: $key})-[r:INFORMED_BY]->(:Decision) RETURN max(r.recorded_at) AS at
