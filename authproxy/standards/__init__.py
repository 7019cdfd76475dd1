"""Tables and grammars taken from the standards (JOSE, HTTP): one source each for config, auth and policy.

This package sits at the bottom of the import layers, beside errors and logs: it imports nothing of authproxy.
"""
