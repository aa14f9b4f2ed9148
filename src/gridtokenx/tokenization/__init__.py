"""tokenization domain."""
