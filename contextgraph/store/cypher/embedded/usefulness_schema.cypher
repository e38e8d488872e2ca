// Stored usefulness scores of precedents (contextgraph.usefulness) for the embedded engine.
CREATE NODE TABLE IF NOT EXISTS PrecedentUsefulness(key STRING PRIMARY KEY, shown INT64, approved INT64, overridden INT64, escalated INT64, score DOUBLE, maybe_outdated BOOLEAN, at TIMESTAMP);
