"""Benchmarks and the chaos ledger: tools run by hand (`make chaos`, `make bench`), never by
the test suite. Each starts its own throwaway stack, database and broker on loopback."""
