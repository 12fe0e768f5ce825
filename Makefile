# Two entry points (see README Quickstart):
#   make demo   install, then run the main job on the embedded default
#   make test   install, then lint (ruff, rules in pyproject.toml) and run the test suite (what CI runs)
PY ?= python3
export RAY_AUTH_MODE ?= disabled
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: install demo test test-slow docs bench-ranking

install:
	@bash scripts/install.sh

demo: install
	ray-nasrank search --dataset fashion-mnist --budget 8 --concurrency 2 --out runs/demo

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q tests

test-slow: install
	$(PY) -m pytest -q -m slow tests

docs: install
	mkdocs build --strict
