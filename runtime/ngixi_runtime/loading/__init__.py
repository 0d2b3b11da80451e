"""Loading and running guests: the loader, component guests, tenants and their child processes."""
