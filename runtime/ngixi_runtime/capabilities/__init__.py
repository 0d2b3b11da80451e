"""Host capabilities: what each grants a guest, its options and ceiling, and its host implementation."""
