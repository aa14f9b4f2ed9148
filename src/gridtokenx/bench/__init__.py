"""Benchmarks: every `gridtokenx bench ...` measurement, kept out of the domains."""
