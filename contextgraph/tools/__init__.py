"""Tools for agents: pydantic-ai tools (`agent`) and the MCP server (`mcp`)."""
