"""contextgraph: human decisions in Airflow as a context graph for AI agents."""

__version__ = "0.1.0"
