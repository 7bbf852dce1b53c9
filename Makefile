# forgeml — set-up, demo, tests, benchmarks. Every target creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup dev browser demo test bench readme-figures lint clean

# torch first: `pip install torch==2.13.0` takes the CPU build from local disk on our machines and the
# regular build elsewhere; the project's range `torch>=2.3` then keeps it. Never remove pip's constraint file.
$(VENV)/.stamp-core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-core
	$(BIN)/pip install -q -e '.[dev,onnx,serve,tune,pretrained,explain,privacy,federated,audio]'
	touch $@

setup: $(VENV)/.stamp-core

dev: $(VENV)/.stamp-dev

demo: setup
	$(BIN)/forgeml demo

# Debian's chromium for the browser tests of the HTML reports; without it those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium could not be installed here (apt-get needs root): the browser tests will be skipped"

test: dev browser
	$(BIN)/python -m pytest -q -n 2 --dist loadscope --durations=30

bench: dev
	$(BIN)/pip install -q -e '.[bench]' 'torch==2.13.0'
	$(BIN)/python benchmarks/loop_overhead.py
	$(BIN)/python benchmarks/precision.py
	$(BIN)/python benchmarks/gpt_train.py
	$(BIN)/python benchmarks/pretrained_vs_scratch.py

# every figure the README quotes, re-measured beside the README's (add ARGS=--update to write them in)
readme-figures: setup
	$(BIN)/python benchmarks/readme_figures.py $(ARGS)

lint: dev
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
