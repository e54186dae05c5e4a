"""Fixtures for the tests and the benchmarks: the stack of real processes, local PostgreSQL and
RabbitMQ instances, isolation, factories and an API client. Not part of the image."""
