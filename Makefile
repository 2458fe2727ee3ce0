# edgeclf: `make demo` and `make test` each install what they need into .venv first.
PYTHON ?= python3
VENV ?= .venv
RUNTIME_VENV ?= .venv-runtime
MEDIAPIPE_VENV ?= .venv-mediapipe
TFLITE_VENV ?= .venv-tflite
MEDIAPIPE ?= mediapipe==1.2.2
BIN = $(VENV)/bin
ARM_CACHE = $${EDGECLF_ARM_CACHE:-$$HOME/.cache/edgeclf/arm}
SYSTEMD_CACHE = $${EDGECLF_SYSTEMD_CACHE:-$$HOME/.cache/edgeclf/systemd}
PIP_FLAGS = -q --disable-pip-version-check

.PHONY: install install-runtime install-mediapipe install-chromium install-mosquitto install-systemd install-tflite-runtime \
	demo test test-beside test-runtime \
	test-tflite-runtime test-arm bench docs clean

install: $(VENV)/.installed

# Reinstalls only when pyproject.toml changes; the editable install picks up code changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/pip install $(PIP_FLAGS) -e ".[train,dev]"
	touch $@

# The runtime alone, as on a Raspberry Pi: no TensorFlow.
install-runtime: $(RUNTIME_VENV)/.installed

$(RUNTIME_VENV)/.installed: pyproject.toml
	test -x $(RUNTIME_VENV)/bin/python || $(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(RUNTIME_VENV)/bin/pip install $(PIP_FLAGS) -e ".[gpio]" pytest
	touch $@

# The legacy tflite-runtime 2.14 as the only backend (it needs numpy<2). Best effort: wheels exist only
# for some platforms and Pythons; when it cannot be installed, its test run is skipped with a note.
install-tflite-runtime: $(TFLITE_VENV)/.installed

$(TFLITE_VENV)/.installed: pyproject.toml
	@( test -x $(TFLITE_VENV)/bin/python || $(PYTHON) -m venv $(TFLITE_VENV) ) \
	  && $(TFLITE_VENV)/bin/pip install $(PIP_FLAGS) "tflite-runtime==2.14.0" "numpy<2" "opencv-python-headless<4.11" \
	       click pyyaml flatbuffers paho-mqtt pytest gpiozero \
	  && $(TFLITE_VENV)/bin/pip install $(PIP_FLAGS) --no-deps -e . \
	  && touch $@ \
	  || (echo "note: could not install tflite-runtime into $(TFLITE_VENV); its test run will be skipped"; \
	      rm -rf $(TFLITE_VENV))

# MediaPipe (a real reader of our TFLite Metadata) needs absl-py 2, which tfmot refuses: its own venv.
# Best effort: when it cannot be made, the interop test is skipped and says why.
install-mediapipe: $(MEDIAPIPE_VENV)/.installed

$(MEDIAPIPE_VENV)/.installed:
	@( test -x $(MEDIAPIPE_VENV)/bin/python || $(PYTHON) -m venv $(MEDIAPIPE_VENV) ) \
	  && $(MEDIAPIPE_VENV)/bin/pip install $(PIP_FLAGS) "$(MEDIAPIPE)" \
	  && touch $@ \
	  || (echo "note: could not install $(MEDIAPIPE) into $(MEDIAPIPE_VENV); the MediaPipe interop test will be skipped"; \
	      rm -rf $(MEDIAPIPE_VENV))

# Headless Chromium (Debian's package) checks that the HTML reports render. Best effort, like MediaPipe.
# systemd-analyze (Debian's systemd package) verifies the units `edgeclf service install` writes. Best effort: only
# the tool is needed, not a running systemd; without it those tests are skipped with a note.
install-systemd:
	@(command -v systemd-analyze && command -v systemd-nspawn && command -v mmdebstrap) >/dev/null 2>&1 \
	  || (command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd systemd-container mmdebstrap) >/dev/null 2>&1) \
	  || echo "note: could not install systemd, systemd-container and mmdebstrap; the unit verification and systemd service tests will be skipped"

install-chromium:
	@command -v chromium >/dev/null 2>&1 \
	  || (command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1) \
	  || echo "note: could not install chromium; the HTML rendering tests will be skipped"

# A real MQTT broker (Debian's mosquitto) for the camera's MQTT and Home Assistant tests, which start it on a free
# loopback port themselves (the package's own service is not needed). Best effort, like Chromium.
install-mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto \
	  || (command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto) >/dev/null 2>&1) \
	  || echo "note: could not install mosquitto; the MQTT tests will be skipped"

demo: install
	$(BIN)/edgeclf build --prune 0.5 --int8
	$(BIN)/edgeclf compare runs/latest/model_float32.tflite runs/latest/model_int8.tflite --data digits
	$(BIN)/edgeclf bench runs/latest/model_int8.tflite --threads 1,2

# The toolchain test files that share the session's small builds (tests/toolchain/conftest.py: tiny_run, choice_run):
# they run in one process, so each build is made once. A new file that uses them belongs here (elsewhere it is
# still right, it only builds them a second time).
SHARED_BUILDS = tests/toolchain/test_build.py tests/toolchain/test_interop.py tests/toolchain/test_model_choice.py \
  tests/toolchain/test_report_html.py tests/toolchain/test_variants.py tests/toolchain/test_xnnpack_partitions.py

# Three lanes at once. In the foreground, .venv's runtime tests and the toolchain tests that share the small builds;
# beside it, .venv's other toolchain tests (log shown after), and the runtime without TensorFlow, under tflite-runtime
# and in the emulated ARM roots (log shown after). Each lane is mostly one busy process that often waits (a
# subprocess, a socket, a training step's Python), and in two lanes the machine sat 30% idle (make test: 140% CPU,
# 17.5 min warm). Ctrl-C stops every lane.
test: install install-runtime install-mediapipe install-chromium install-mosquitto install-systemd install-tflite-runtime
	@mkdir -p $(ARM_CACHE) build && (bash tests/arm/run.sh --prepare > $(ARM_CACHE)/prepare.log 2>&1 &)
	@mkdir -p $(SYSTEMD_CACHE) && (bash tests/systemd/root.sh --prepare > $(SYSTEMD_CACHE)/prepare.log 2>&1 &)
	@echo "make test: in $(VENV), the runtime and the toolchain's shared builds here and its other tests beside" \
	  "(build/test-toolchain.log); the runtime in $(RUNTIME_VENV), $(TFLITE_VENV) and the ARM roots beside too (build/test-beside.log)"
	@trap 'trap - INT TERM; kill -TERM 0' INT TERM; \
	  $(MAKE) --no-print-directory test-beside > build/test-beside.log 2>&1 & beside=$$!; \
	  $(BIN)/python -m pytest -q tests $(addprefix --ignore=,tests/runtime $(SHARED_BUILDS)) -p no:cacheprovider \
	    > build/test-toolchain.log 2>&1 & toolchain=$$!; \
	  $(BIN)/python -m pytest -q tests/runtime $(SHARED_BUILDS); here=$$?; \
	  wait $$toolchain; rest=$$?; \
	  echo "== beside in $(VENV): the other toolchain tests, the systemd service, the docs"; cat build/test-toolchain.log; \
	  wait $$beside; others=$$?; \
	  echo "== beside: the runtime without TensorFlow, under tflite-runtime, in the ARM roots"; cat build/test-beside.log; \
	  echo "make test: $(VENV) suite exit $$here and $$rest, the others exit $$others"; \
	  [ $$here = 0 ] && [ $$rest = 0 ] && [ $$others = 0 ]

# What `make test` runs beside the main suite, one after the other; each runs even when one before it failed.
test-beside:
	@status=0; \
	  $(MAKE) --no-print-directory test-runtime || status=1; \
	  $(MAKE) --no-print-directory test-tflite-runtime || status=1; \
	  $(MAKE) --no-print-directory test-arm || status=1; \
	  exit $$status

# The runtime tests again, in an environment where TensorFlow is not installed at all.
test-runtime: install-runtime
	$(RUNTIME_VENV)/bin/python -m pytest -q tests/runtime -p no:cacheprovider

# The runtime tests once more with tflite-runtime as the only interpreter backend.
test-tflite-runtime: install-tflite-runtime
	@if [ -f $(TFLITE_VENV)/.installed ]; then \
	  EDGECLF_EXPECT_BACKEND=tflite_runtime $(TFLITE_VENV)/bin/python -m pytest -q tests/runtime -p no:cacheprovider; \
	else echo "skipped: no tflite-runtime venv (see the note above)"; fi

# The runtime tests, edgeclf doctor and the x86 agreement check in emulated Raspberry Pi OS roots: arm64 trixie
# (Pi OS 64-bit) and armhf bookworm (Pi OS 32-bit). Needs root and qemu's binfmt_misc; otherwise it prints
# why and skips. The roots are built once into ~/.cache/edgeclf/arm ($$EDGECLF_ARM_CACHE).
test-arm: install
	@bash tests/arm/run.sh

bench: install
	$(BIN)/python benchmarks/run_all.py

# The guides under docs/ as a site in build/site (strict: a broken link or a page left out of mkdocs.yml's nav
# fails; tests/test_docs.py builds it the same way in make test).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) $(RUNTIME_VENV) $(MEDIAPIPE_VENV) $(TFLITE_VENV) runs build *.egg-info
