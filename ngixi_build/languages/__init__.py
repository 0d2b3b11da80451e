"""Guest languages: one module per language (its compile and toolchain), named by one line of registry.py."""
