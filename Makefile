# The set-up is two commands: `make demo` (train on the embedded CPU default) and `make test`.
# Both create .venv on first use; later runs reuse it (reinstalling only when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sonic-ray-installed
PYTEST_ARGS ?=

.PHONY: setup system-deps test test-fast lint demo bench clean

# Evaluation videos render offscreen with MuJoCo on Mesa's software EGL/OpenGL. When those libraries
# are missing, install them with apt-get, but only as root on a machine that has apt-get; anywhere
# else print what is needed and carry on (everything but video rendering works without them).
RENDER_PKGS := libegl1 libegl-mesa0 libgl1 libglx-mesa0 libgl1-mesa-dri libopengl0
RENDER_LIBS := libEGL.so.1 libEGL_mesa.so.0 libOpenGL.so.0 libGL.so.1
# The viewer's browser tests (tests/view/test_pages.py) drive a headless chromium: installed the same way.
BROWSER_PKGS := chromium
BROWSERS := chromium chromium-browser google-chrome

system-deps:
	@missing=""; for lib in $(RENDER_LIBS); do ldconfig -p 2>/dev/null | grep -q "$$lib" || missing="$$missing $$lib"; done; \
	ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1 || missing="$$missing swrast_dri.so"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "missing$$missing: installing the offscreen rendering libraries $(RENDER_PKGS)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    $(RENDER_PKGS) >/dev/null) || echo "warning: apt-get could not install $(RENDER_PKGS); evaluation videos will not render"; \
	else \
	  echo "note: missing$$missing; evaluation videos need $(RENDER_PKGS) (not root or no apt-get: not installed)"; \
	fi
	@found=""; for b in $(BROWSERS); do command -v $$b >/dev/null 2>&1 && found=$$b; done; \
	if [ -n "$$found" ] || [ -n "$$SONIC_RAY_CHROMIUM" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "no chromium: installing $(BROWSER_PKGS) for the viewer's browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    $(BROWSER_PKGS) >/dev/null) || echo "warning: apt-get could not install $(BROWSER_PKGS); the browser tests will skip"; \
	else \
	  echo "note: no chromium; the viewer's browser tests need $(BROWSER_PKGS) (not root or no apt-get: not installed; they skip)"; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: a bare `torch` requirement with no torch installed pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,export,video,fsq,warp,view]"
	touch $(STAMP)

setup: system-deps $(STAMP)

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
