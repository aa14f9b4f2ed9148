"""Benchmarks: `gridtokenx bench ...`, kept out of the domains."""
