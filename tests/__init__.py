"""authproxy's tests; the shared rig is the `tests.rigs` package."""
