"""readings domain."""
