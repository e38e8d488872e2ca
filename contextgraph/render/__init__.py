"""The graph for people: export (GraphML, node-link JSON), trace pictures, Neo4j Browser."""
