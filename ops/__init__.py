"""Tools that span several services: the ops CLI, the stack runner, and the helpers that
start a stack for tests, the benchmark and the chaos run. Nothing in shared/ imports this."""
