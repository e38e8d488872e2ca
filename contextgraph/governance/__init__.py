"""Governance: erasure (forget) and scoped read paths."""
