"""Reading bundles: signature first, then each member's digest before it is used."""
