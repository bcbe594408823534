"""Benchmarks of uwsgi-supervisor against the alternatives: run `scripts/bench`."""
