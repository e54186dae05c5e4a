"""The end-to-end tests share one stack of real processes for the run: `stack` and `http`
in tests/conftest.py (the browser tests use the same one)."""
