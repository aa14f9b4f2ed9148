"""meters domain."""
