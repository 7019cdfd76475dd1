"""MCP endpoints on the proxied port: each JSON-RPC message authorized, tools/list answers filtered."""
