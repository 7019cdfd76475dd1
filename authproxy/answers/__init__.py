"""Every answer of authproxy's own, rendered in one place for every front end: the table from a refusal (or
an upstream failure, a parser refusal, the last-resort 500) to status, JSON body and challenge
(`table.py`), a refusal rendered for the route that made it (`denials.py`), and the MCP protected-resource
metadata (`mcp_metadata.py`). It sits below the proxied port, so the decision port (`authz/`) and the
command line (`cli/`) render through it without reaching into `proxy/`.
"""
