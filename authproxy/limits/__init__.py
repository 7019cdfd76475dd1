"""Rate limits: token buckets per caller and route, kept in process or in Redis (see README, "Rate limits").

The gate asks check.apply_limits once a request is allowed; only the proxy consumes tokens.
"""
