"""Configuration: `load(path)` is the only entry point; it returns a frozen Config or raises ConfigError."""
