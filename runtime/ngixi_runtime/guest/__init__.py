"""What a guest is and may do: its manifest, and the check of its module or component against it."""
