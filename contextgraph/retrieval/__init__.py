"""Retrieval: query words, one ranking over the stores' candidates, lessons, precedents and traces."""
