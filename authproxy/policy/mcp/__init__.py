"""MCP tool rules: which tool a caller may call, with which arguments, per configured MCP endpoint."""
