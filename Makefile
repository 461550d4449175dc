# The two commands a newcomer needs (see README): `make demo` and `make test`.
.PHONY: setup demo test bench lint

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/twin demo

test: setup
	.venv/bin/python -m pytest

bench: setup
	.venv/bin/python benchmarks/bench_extrude.py
	.venv/bin/python benchmarks/bench_h3.py
	.venv/bin/python benchmarks/bench_h3_layer.py

lint: setup
	.venv/bin/lint-imports
