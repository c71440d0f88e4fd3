"""The benchmark: `python -m sserelay.bench` (`make bench`); see docs/benchmarks.md."""
