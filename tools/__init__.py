"""Helpers shared by the tests and the benchmark, and developer scripts; not part of the server."""
