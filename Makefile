# The two commands a newcomer needs (see README): `make demo` and `make test`.
.PHONY: setup demo test bench lint messages

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

# UI strings: extract the msgids of twin/app into the template and merge them into each language's catalogue
# (then translate the new entries in twin/app/locale/*/LC_MESSAGES/twin.po; tests/test_i18n.py checks completeness).
messages:
	.venv/bin/pybabel -q extract --no-default-keywords -k tr -k tr_expr -k tr_fmt -k gettext:2 -k N_ --no-location --sort-output --omit-header \
		-o twin/app/locale/twin.pot twin/app
	.venv/bin/pybabel -q update --no-fuzzy-matching --ignore-obsolete --no-wrap -D twin -i twin/app/locale/twin.pot -d twin/app/locale
