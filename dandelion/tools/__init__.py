"""Developer tools: synthetic speech for tests, benchmarks and load tests."""
