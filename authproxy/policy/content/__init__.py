"""Content rules: what a route's query, body or answer must hold (pins, item scopes, owner lookups,
response checks)."""
