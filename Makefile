# lvo_tf: the two commands a new user needs are `make demo` and `make test`.
# Both create .venv and install requirements.txt on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup test test-fast lint demo bench default-weights ablations clean

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

# Trains the shipped default model (lvo_tf/weights/lite_synthetic.*) from nothing:
# synthetic data, DIS flow (dis_fine), MP-Net, the appearance stream, cached features, the
# memory, then packaging. Seeds and settings are in the flagfiles and are recorded
# in the manifest. 50 to 95 minutes on 2 CPU cores; every step resumes if interrupted.
W := out/default
STREAMS := --appearance_weights=$(W)/appearance/appearance.weights.h5 \
	--motion_weights=$(W)/mpnet/motion.weights.h5 --flow_dir=$(W)/synth/FlowCache \
	--flow_method=dis_fine
default-weights: $(STAMP)
	$(PY) -m lvo_tf.synthesize --output_dir=$(W)/synth --num_videos=360 --frames=24 --seed=1
	$(PY) -m lvo_tf.compute_flow --davis_root=$(W)/synth --split=all --method=dis_fine \
		--output_dir=$(W)/synth/FlowCache
	$(PY) -m lvo_tf.train_mpnet --flagfile=flags/default_mpnet.flags
	$(PY) -m lvo_tf.train_appearance --flagfile=flags/default_appearance.flags
	$(PY) -m lvo_tf.extract_features --data_root=$(W)/synth --split=train $(STREAMS) \
		--output_dir=$(W)/features/train
	$(PY) -m lvo_tf.extract_features --data_root=$(W)/synth --split=val $(STREAMS) \
		--output_dir=$(W)/features/val
	$(PY) -m lvo_tf.train --flagfile=flags/default_memory.flags
	$(PY) -m lvo_tf.package_default --flagfile=flags/default_package.flags
	mkdir -p docs/default_model
	for run in mpnet appearance memory; do cp $(W)/$$run/training_curves.png \
		docs/default_model/curves_$$run.png; done

# The paper's ablations on the default model's data, each memory variant trained
# with the same budget as the default (needs `make default-weights` first); the
# real sequences come from $$LVO_DAVIS_DEV or ../shared/data/davis2016-dev.
DEV ?= $(or $(LVO_DAVIS_DEV),../shared/data/davis2016-dev)
ablations: $(STAMP)
	if [ -d "$(DEV)" ]; then $(PY) -m lvo_tf.extract_features --data_root=$(DEV) --split=val \
		--weights=lvo_tf/weights/lite_synthetic.weights.h5 --process_height=360 \
		--flow_dir=$(W)/dev_flow --output_dir=$(W)/features/dev; fi
	$(PY) -m lvo_tf.train --flagfile=flags/default_memory.flags --memory=none \
		--output_dir=$(W)/ablation/none
	$(PY) -m lvo_tf.train --flagfile=flags/default_memory.flags --memory=forward \
		--output_dir=$(W)/ablation/forward
	$(PY) -m lvo_tf.train --flagfile=flags/default_memory.flags --stop_and_go=0 \
		--output_dir=$(W)/ablation/no_stop_and_go
	$(PY) -m lvo_tf.train --flagfile=flags/default_memory.flags --streams=both \
		--output_dir=$(W)/ablation/both_streams
	$(PY) -m lvo_tf.train --flagfile=flags/default_memory.flags --motion_gain=1,1 \
		--output_dir=$(W)/ablation/no_gain
	$(PY) -m lvo_tf.ablations --work_dir=$(W) --dev_root=$(DEV) --output_dir=docs \
		--process_height=360

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
