"""Pulling signed bundles from an OCI registry: the `pull` extra (`pip install 'ngixi-runtime[pull]'`, oras and
requests). The build side's publish pushes through the same client."""
