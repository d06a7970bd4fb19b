"""Benchmarks of the workbench itself: how well rankers and proxies order architectures."""
