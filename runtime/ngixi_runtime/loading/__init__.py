"""Loading and running guests: the loader (core and component guests), tenants and their child processes."""
