# The README's two commands are `make demo` and `make test`; both install
# what is missing first (tools/install.sh is idempotent).
SHELL := /bin/bash
VENV ?= $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
TOY_WORLD ?= data/toy_world
TEACHER_CONFIG ?= configs/unicl/unicl_toy_vit_p8_10e_toy.py
PYTEST_ARGS ?=

.PHONY: install toy-world toy-teacher demo baseline test rehearse

install:
	MMOVL_VENV=$(VENV) bash tools/install.sh

toy-world: install
	$(PY) tools/dataset_converters/make_toy_world.py $(TOY_WORLD)

# The toy CLIP teacher (UniCL on the toy world), trained once and kept.
toy-teacher: toy-world
	@if [ ! -f $(TOY_WORLD)/toy_clip.safetensors ]; then \
	  $(PY) tools/train.py $(TEACHER_CONFIG) --work-dir work_dirs/toy_teacher && \
	  $(PY) tools/model_converters/unicl_to_open_clip.py \
	    work_dirs/toy_teacher/epoch_10.pth $(TOY_WORLD)/toy_clip.safetensors; \
	else echo "toy teacher: keeping $(TOY_WORLD)/toy_clip.safetensors"; fi

# The main job: MKT on the toy world against its teacher and random scores,
# with the paper's ablations.
demo: toy-teacher
	$(PY) bench/bench_mkt_toy.py

# The supervised baseline (seen labels only).
baseline: toy-world
	$(PY) tools/train.py configs/baseline/vit_tiny_p8_linear_10e_toy.py

test: install
	$(PY) -m pytest tests $(PYTEST_ARGS)

# Every real config through train -> kill -> resume -> test, 2 processes and
# --amp, on miniature data with random weights; prints the sizing table.
REHEARSAL_ROOT ?= work_dirs/rehearsal
rehearse: install
	$(PY) tools/misc/rehearse.py --root $(REHEARSAL_ROOT) --sizing --keep-going
