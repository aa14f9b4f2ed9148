"""Benchmarks kept out of the domains: `gridtokenx bench ws`, `gridtokenx bench cluster`."""
