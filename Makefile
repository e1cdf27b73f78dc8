# The set-up is two commands: `make demo` (train on the embedded CPU default) and `make test`.
# Both create .venv on first use; later runs reuse it (reinstalling only when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sonic-ray-installed
PYTEST_ARGS ?=

.PHONY: setup system-deps test test-fast lint demo bench clean isaaclab-setup test-isaaclab

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

# Isaac Lab 3.0 backend (sim.backend=isaaclab; Newton physics, no Kit): a second venv on Python 3.12.
# isaaclab needs Python >=3.12,<3.13 and newton pins mujoco~=3.12 while the project pins mujoco 4.0, so
# the project goes in with --no-deps and its other requirements (pyproject's, mujoco left out) resolve in
# one pip call beside the `isaaclab` and `export` extras (onnxruntime: `sonic-ray sim2sim --backend isaaclab`)
# and ISAACLAB_MUJOCO. ~8 GB (torch's CUDA build comes with it).
ISAACLAB_VENV ?= .venv-isaaclab
ISAACLAB_MUJOCO ?= mujoco==3.12.0
ISAACLAB_PY := $(ISAACLAB_VENV)/bin/python
ISAACLAB_STAMP := $(ISAACLAB_VENV)/.sonic-ray-installed
ISAACLAB_TESTS ?= tests/sim/test_isaaclab_backend.py tests/sim/test_conformance.py \
  tests/deploy/test_sim2sim_isaaclab.py -k isaaclab

$(ISAACLAB_PY):
	@py=""; if python3.12 --version >/dev/null 2>&1; then py=python3.12; \
	elif command -v pyenv >/dev/null 2>&1; then py=$$(ls -d "$$(pyenv root)"/versions/3.12*/bin/python3.12 2>/dev/null | tail -1); fi; \
	if [ -z "$$py" ]; then echo "error: the Isaac Lab backend needs Python 3.12 (install python3.12, or 'pyenv install 3.12')"; exit 1; fi; \
	echo "creating $(ISAACLAB_VENV) with $$py"; "$$py" -m venv $(ISAACLAB_VENV)

$(ISAACLAB_STAMP): pyproject.toml Makefile | $(ISAACLAB_PY)
	$(ISAACLAB_PY) -m pip install -q --upgrade pip
	$(ISAACLAB_PY) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	  o = p['optional-dependencies']; d = [r for r in p['dependencies'] if not r.startswith('mujoco')]; \
	  d += o['isaaclab'] + o['export'] + [r for r in o['dev'] if r.startswith('pytest')] + ['$(ISAACLAB_MUJOCO)']; \
	  open('$(ISAACLAB_VENV)/requirements.txt', 'w').write(chr(10).join(d) + chr(10))"
	$(ISAACLAB_PY) -m pip install -q -r $(ISAACLAB_VENV)/requirements.txt
	$(ISAACLAB_PY) -m pip install -q --no-deps -e .
	touch $(ISAACLAB_STAMP)

isaaclab-setup: $(ISAACLAB_STAMP)

test-isaaclab: isaaclab-setup
	$(ISAACLAB_PY) -m pytest -q $(ISAACLAB_TESTS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(ISAACLAB_VENV) .pytest_cache .ruff_cache
