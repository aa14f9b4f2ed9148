"""simulator domain."""
