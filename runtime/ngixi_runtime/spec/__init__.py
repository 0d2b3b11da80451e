"""Shared contracts: manifest schema helpers, the bundle format, target triples, the module reader, the host ABI."""
