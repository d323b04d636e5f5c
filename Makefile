# bridgevla — common jobs. `make install && make test` sets up and checks a fresh clone.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Debian packages the embedded MuJoCo renderer needs for headless EGL / OSMesa rendering on a CPU.
DEB_LIBS := libegl1 libgl1 libgl1-mesa-dri libosmesa6
export MUJOCO_GL ?= egl

.PHONY: install system-libs test test-all test-slow lint bench bench-gpu bench-gpu-dry demos demo demo-seeds benchmark-embedded \
	benchmark-embedded-curve eval-embedded tasks-report tasks-gallery \
	pretrain-heatmap
CHECKPOINT ?= runs/demo/seed_0/train/policy
EPISODES ?= 10
WORKERS ?= 1

install: system-libs
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and pinned: an unpinned resolve would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[sim,dev,viz]"
	# openpi's real client for the serving tests: its metadata pins numpy < 2, its code runs on our numpy 2.
	$(PIP) install --quiet --no-deps openpi-client==0.1.2

system-libs:
	@missing=$$(for p in $(DEB_LIBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "system libraries present: $(DEB_LIBS)"; \
	elif [ "$$(id -u)" = "0" ]; then \
		echo "installing $$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "missing Debian packages: $$missing — run: sudo apt-get install $$missing"; exit 1; fi

test:
	$(PY) -m pytest -q -n 2 tests

test-all:
	$(PY) -m pytest -q -n 2 --runslow tests

test-slow:
	$(PY) -m pytest -q -n 2 --runslow -m slow tests

lint:
	$(VENV)/bin/ruff check .

bench:
	$(PY) -m benchmarks.speed.render
	$(PY) -m benchmarks.speed.generate
	$(PY) -m benchmarks.speed.simulation
	$(PY) -m bridgevla.scripts.speed_policy
	$(PY) -m bridgevla.scripts.speed_cloud

# Every GPU figure of docs/PERFORMANCE.md (3B act/training, render/decode, CPU = GPU tests) in <= 8 min on one GPU;
# bench-gpu-dry runs the same code with the tiny preset on the CPU.
bench-gpu:
	bash benchmarks/speed/gpu.sh

bench-gpu-dry:
	PYTHON=$(PY) bash benchmarks/speed/gpu.sh --dry-run

# Expert demos for every embedded task into data/demos (resumable; exits 1 if any expert episode fails).
demos:
	$(PY) -m bridgevla generate --out data/demos --episodes $(EPISODES) --workers $(WORKERS)

# Expert success of every embedded task over 100 seeds (resumable; exits 1 on any failure).
tasks-report:
	$(PY) -m benchmarks.embedded.expert_report --seeds 100 --out expert_report.jsonl

# The per-task pictures in docs/tasks.md.
tasks-gallery:
	$(PY) -m benchmarks.embedded.gallery --out docs/images/tasks

# Heatmap pre-training (docs/pretraining.md); fine-tune from it with `bridgevla train ... init.checkpoint=<out>/policy`.
# Default: the small preset on synthetic scenes into runs/pretrain (pretrain/configs/synthetic.yaml). Real data:
#   make pretrain-heatmap DATA=robopoint DATA_PATH=/data/robopoint/detection_data.json IMAGES=/data/robopoint/images
#   make pretrain-heatmap DATA=coco DATA_PATH=coco/annotations/instances_val2017.json IMAGES=coco/val2017
# The 3B recipe on 8 GPUs: PRETRAIN_CONFIG=pretrain/configs/reference.yaml GPUS=8 (plus DATA_PATH/IMAGES and
# ARGS="model.backbone_path=/models/paligemma-3b-pt-224"). ARGS takes any other key=value overrides.
PRETRAIN_CONFIG ?= pretrain/configs/synthetic.yaml
pretrain-heatmap:
	$(if $(GPUS),$(VENV)/bin/torchrun --nproc_per_node $(GPUS),$(PY)) -m pretrain --config $(PRETRAIN_CONFIG) \
		$(if $(DATA),data.source=$(DATA)) $(if $(DATA_PATH),data.annotations=$(DATA_PATH)) \
		$(if $(IMAGES),data.images=$(IMAGES)) $(ARGS)

# The main job: demos -> pre-train -> train the small preset on CPU -> evaluate with baselines
# (bridgevla/configs/demo.yaml). ARGS takes key=value overrides.
demo:
	$(PY) -m bridgevla.scripts.demo $(ARGS)

# The demo recipe's success rate as docs/training.md reports it: three training seeds, 50 test episodes per task each,
# mean ± std over the seeds (about three times `make demo`'s time).
demo-seeds:
	$(PY) -m bridgevla.scripts.demo out_dir=runs/demo_seeds "train_seeds=[0,1,2]" $(ARGS)

# All ten embedded tasks, one multi-task policy (bridgevla/configs/benchmark_embedded.yaml).
benchmark-embedded:
	$(PY) -m bridgevla.scripts.demo --config bridgevla/configs/benchmark_embedded.yaml $(ARGS)

# Success vs demos per task (1, 3 and 10), three training seeds: nine training runs, hours on a CPU.
benchmark-embedded-curve:
	$(PY) -m bridgevla.scripts.demo --config bridgevla/configs/benchmark_embedded.yaml \
		out_dir=runs/benchmark_embedded_curve "train_seeds=[0,1,2]" "curve_demos=[1,3]" $(ARGS)

# Evaluate a trained policy (and the baselines) on the embedded benchmark: make eval-embedded CHECKPOINT=dir
eval-embedded:
	$(PY) -m bridgevla.scripts.cli eval --config bridgevla/configs/eval_embedded.yaml --checkpoint $(CHECKPOINT)
