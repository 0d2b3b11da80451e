"""Guest toolchains: the pinned AssemblyScript compiler, its long-lived server, the WIT catalog and bindings."""
