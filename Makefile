# The two entry points of the README. Both create or reuse .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.driftline-installed

.PHONY: demo test bench clean

# The C sources too: an editable install compiles them once, so a changed one needs a reinstall.
$(STAMP): pyproject.toml $(wildcard features/*.c features/*/*.c)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/driftline demo

test: $(STAMP)
	$(BIN)/python -m pytest

$(VENV)/.driftline-bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

# Every bench/bench_*.py prints its figures and ratios against baselines from the same run.
bench: $(VENV)/.driftline-bench
	for script in bench/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
