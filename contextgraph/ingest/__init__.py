"""Ingest: Airflow's records -> redaction -> graph batches -> the store, then the embedding pass."""
