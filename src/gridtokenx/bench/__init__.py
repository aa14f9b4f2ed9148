"""Benchmarks: every `gridtokenx bench ...`, measured beside this machine's own ceilings."""
