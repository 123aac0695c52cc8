# adacal — `make demo` runs the bundled example, `make test` the test suite.
# Both build .venv/ first when it is missing or older than the requirements.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.adacal-installed
# numpy (and torch) are constrained on EVERY pip call: see requirements/constraints.txt
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -q -c requirements/constraints.txt
OUT    := examples/out
# apt-get for chromium: directly as root (CI), through sudo otherwise
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test bench clean chromium

install: $(STAMP)

$(STAMP): requirements/base.txt requirements/nodeps.txt requirements/constraints.txt pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "adacal needs Python 3.11, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements/base.txt
	$(PIP) setuptools wheel
	# lava-nc / lava-dl / sinabs / spikingjelly: see requirements/nodeps.txt for why --no-deps
	$(PIP) --no-deps --ignore-requires-python -r requirements/nodeps.txt
	# xylosim is an sdist with C++ (pybind11, installed above, must be there first)
	$(PIP) --no-build-isolation xylosim==0.1.3
	$(PIP) --no-deps --no-build-isolation -e .
	$(BIN)/python -c 'import numpy, torch, onnxruntime, adacal; print("installed: numpy", numpy.__version__, "torch", torch.__version__)'
	@touch $(STAMP)

demo: install
	$(BIN)/python examples/digits_cnn.py --out $(OUT)
	$(BIN)/adacal inspect $(OUT)/digits_cnn.onnx
	$(BIN)/adacal convert $(OUT)/digits_cnn.onnx --calib $(OUT)/digits_calib.npz --val $(OUT)/digits_test.npz \
		--timesteps 4 --max-spikes 4 -o $(OUT)/converted --force
	$(BIN)/adacal compile-loihi2 $(OUT)/digits_cnn.onnx --calib $(OUT)/digits_calib.npz \
		--val $(OUT)/digits_test.npz --timesteps 8 --max-spikes 4 -o $(OUT)/loihi2 --force
	$(BIN)/adacal verify $(OUT)/loihi2 --data $(OUT)/digits_test.npz --samples 5
	$(BIN)/python examples/digits16_mlp.py --out $(OUT)
	$(BIN)/adacal compile-xylo $(OUT)/digits16_mlp.onnx --calib $(OUT)/digits16_calib.npz \
		--val $(OUT)/digits16_test.npz --device xylo-audio3 --timesteps 16 -o $(OUT)/xylo --force
	$(BIN)/adacal verify $(OUT)/xylo --data $(OUT)/digits16_test.npz --samples 50

test: install chromium
	$(BIN)/python -m pytest -q

# headless Chromium renders report.html in tests/test_report_html.py (Debian's package; CI runs as root
# with the package registry reachable).  Installed only when missing; a failed install stops `make test`.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (apt-get) for tests/test_report_html.py ..."; \
	  $(SUDO) apt-get update -q >/dev/null && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends chromium fonts-dejavu-core >/dev/null; } \
	  || { echo "error: could not install chromium with apt-get (needed by tests/test_report_html.py)" >&2; exit 1; }
	@command -v chromium >/dev/null 2>&1 || { echo "error: chromium is not on PATH after installing it" >&2; exit 1; }

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .hypothesis
