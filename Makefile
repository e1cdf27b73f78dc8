# The set-up is two commands: `make demo` (train on the embedded CPU default) and `make test`.
# Both create .venv on first use; later runs reuse it (reinstalling only when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sonic-ray-installed
PYTEST_ARGS ?=

.PHONY: setup test test-fast lint demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: a bare `torch` requirement with no torch installed pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,export,video,fsq,warp]"
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check sonic_ray tests

# The main job: distributed training (local Ray) on the embedded synthetic motions, CPU MuJoCo.
demo: setup
	$(VENV)/bin/sonic-ray train +exp=demo $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
