"""Benchmarks: `gridtokenx bench ...`, measured against this machine's own ceilings."""
