# lvo_tf: the two commands a new user needs are `make demo` and `make test`.
# Both create .venv and install requirements.txt on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup test test-fast lint demo bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# TF Serving's request protos; its declared dependency on the full tensorflow
	# wheel would install beside tensorflow-cpu, so no deps (grpcio and protobuf
	# come with tensorflow-cpu).
	$(PY) -m pip install --quiet --no-deps tensorflow-serving-api==2.21.0
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The whole suite, slow tests included (this is what CI runs).
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -rs tests

# Everything but the tests marked slow.
test-fast: $(STAMP)
	$(PY) -m pytest -q -rs -m "not slow" tests

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

demo: $(STAMP)
	$(PY) -m lvo_tf.demo --output_dir=out/demo

bench: $(STAMP)
	$(PY) -m lvo_tf.benchmark --output_dir=docs/bench

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
