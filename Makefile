# rcdepth_ros: the README's two commands are `make demo` and `make test`.
# Each creates .venv from the pinned requirements on first use, so a fresh clone needs nothing else.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Every process started from here that may start rclpy: discovery stays on this host, each run gets its own
# DDS domain (parallel runs cannot hear each other), and large images go through shared memory.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
ROS_DOMAIN_ID ?= $(shell echo $$(( ($$$$ % 200) + 20 )))
export ROS_DOMAIN_ID
# Fast DDS 3.x (Kilted) reads FASTDDS_..., Fast DDS 2.x (Humble, Jazzy) reads FASTRTPS_...: set both.
export FASTDDS_DEFAULT_PROFILES_FILE := $(CURDIR)/config/fastdds_shm.xml
export FASTRTPS_DEFAULT_PROFILES_FILE := $(CURDIR)/config/fastdds_shm.xml
export RCDEPTH_DATA ?= $(abspath $(CURDIR)/../shared/data)
export PYTHONUNBUFFERED := 1

.PHONY: venv test demo lint bench clean bench-distill demo-model astyx-model

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel 'setuptools<81'
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m pytest test/test_flake8.py test/test_pep257.py

demo: $(STAMP)
	$(PY) -m rcdepth_ros.cli demo --out out/demo

# The Astyx distillation table (training/tables/distill_astyx.yaml): trains every run (resumable, complete runs
# skipped), checks the distillation gate before the KD rows, evaluates each row on frames 350-435, writes
# benchmarks/results/distill_astyx.{json,md}. Two single-thread jobs (docs/training.md).
bench-distill: $(STAMP)
	$(PY) -m training.run_table --jobs 2 --threads 1

# The bundled Astyx model: the direct student (the XD-KD student has not yet beaten it on the dev frames,
# docs/training.md) at 96x320 for 20 epochs on frames 0-299, evaluated on 350-435, float16, with its weights note.
ASTYX_RUN := runs/astyx/student_direct_e20_s42
astyx-model: $(STAMP)
	test -f $(ASTYX_RUN)/summary.json || $(PY) -m training.train --config training/configs/astyx_student_direct.yaml \
		--out $(ASTYX_RUN) train.epochs=20 train.val_every_epochs=5 train.threads=1
	test -f $(ASTYX_RUN)/eval/evaluation.json || $(PY) -m training.evaluate --model $(ASTYX_RUN) --dataset astyx \
		--split val --out $(ASTYX_RUN)/eval --device cpu
	$(PY) -m training.bundle --run $(ASTYX_RUN) --out weights/xdrcdepth_astyx \
		--license "Trained on Astyx HiRes2019 (Astyx GmbH), licensed CC BY-NC-SA 4.0 (https://creativecommons.org/licenses/by-nc-sa/4.0/): these weights are a derivative of that data set and are shared under the same licence, non-commercial use only, with attribution to Astyx GmbH."

# The bundled demo model: the synthetic-scene student (one torch thread: the same bytes on any core count),
# stored in float16 under weights/.
DEMO_RUN := runs/synthetic/student
demo-model: $(STAMP)
	$(PY) -m training.train --config training/configs/synthetic_student.yaml --out $(DEMO_RUN) train.threads=1
	mkdir -p weights
	cp $(DEMO_RUN)/checkpoints/final.safetensors weights/xdrcdepth_demo_synthetic.safetensors
	cp $(DEMO_RUN)/checkpoints/final.json weights/xdrcdepth_demo_synthetic.json

clean:
	rm -rf out build install log .pytest_cache
