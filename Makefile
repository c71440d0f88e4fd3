# One command per job, the same for a person, CI and the README.
.PHONY: serve test bench setup lint

serve:
	scripts/setup
	.venv/bin/sserelay serve

test:
	scripts/setup --test
	.venv/bin/python -m pytest

bench:
	scripts/setup --test
	.venv/bin/python -m sserelay.bench

lint:
	.venv/bin/ruff check src tests
	.venv/bin/mypy
