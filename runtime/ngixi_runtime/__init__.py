"""The run side: everything a host needs to verify and run a bundle, and nothing of the build."""
