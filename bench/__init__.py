"""edgekit benchmarks: `uv run python -m bench` runs them all and writes results.json / results.md."""
