# The README's commands. Each one installs the stack first (seconds once the
# mmcv wheel is cached in ~/.cache/mmdrn/wheels).
# The environment scripts/install.sh installs into: $VENV, the active
# virtual/conda environment, or ./.venv.
VENV ?= $(or $(VIRTUAL_ENV),$(CONDA_PREFIX),.venv)
PYTHON ?= $(VENV)/bin/python
PYTEST_ARGS ?=
# The default suite runs in two pytest-xdist worker processes, each taking
# whole test files; PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2

.PHONY: install demo test test-slow lint

install:
	bash scripts/install.sh

demo: install
	$(PYTHON) tools/demo.py

test: install
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-slow: install
	$(PYTHON) -m pytest -m slow $(PYTEST_ARGS)

lint:
	$(PYTHON) -m ruff check setup.py mmdrn tools tests configs
	$(PYTHON) -m ruff format --check setup.py mmdrn tools tests

# DRNs vs MMSegmentation's dilated ResNets on the demo data (README): the five
# configs of configs/demo, DRN-C-26 and ResNetV1c-18-D8 (the pair whose
# difference is judged) with seeds 0 1 2, the others with seed 0: nine
# trainings of 1,000 iterations, 59 minutes on a quiet 2-core CPU. Then the
# pictures of the seed-0 models: predictions, and the DRN paper's gridding
# picture (DRN-A-18 against DRN-C-26, the scenes enlarged 4x).
# `make compare COMPARE_ARGS=--quick` (minutes) is a try-out; COMPARE_ARGS go
# to compare.py (e.g. --resume, --launcher pytorch --gpus 8).
COMPARE_ARGS ?=
COMPARE_DIR ?= work_dirs/compare
DRN_A18 := configs/demo/fcn_drn-a-18-d8_1xb8-1k_drn-demo-64x64.py
DRN_C26 := configs/demo/fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py
DRN_D22 := configs/demo/fcn_drn-d-22-d8_1xb8-1k_drn-demo-64x64.py
R18_D8 := configs/demo/fcn_r18-d8_1xb8-1k_drn-demo-64x64.py
DLV3_R18_D8 := configs/demo/deeplabv3_r18-d8_1xb8-1k_drn-demo-64x64.py
DEMO_SCENES := $(foreach i,0 1 2 3 4 5,scene_0000$(i).png)
# --model CONFIG CHECKPOINT of each config: its seed-0 run in COMPARE_DIR
seed0 = $(foreach c,$(1),--model $(c) $$(cat $(COMPARE_DIR)/runs/$(basename $(notdir $(c)))/seed0/last_checkpoint))
.PHONY: compare
compare: install
	$(PYTHON) tools/analysis_tools/compare.py \
	    $(DRN_A18) $(DRN_C26) $(DRN_D22) $(R18_D8) $(DLV3_R18_D8) \
	    --labels DRN-A-18 DRN-C-26 DRN-D-22 ResNetV1c-18-D8 'DeepLabV3 ResNetV1c-18-D8' \
	    --seeds 0 --seeds-for DRN-C-26 0 1 2 --seeds-for ResNetV1c-18-D8 0 1 2 \
	    --pair DRN-C-26 ResNetV1c-18-D8 --class-columns pole wire sign \
	    --work-dir $(COMPARE_DIR) $(COMPARE_ARGS)
	$(PYTHON) tools/analysis_tools/activation_maps.py \
	    $(call seed0,$(DRN_A18) $(DRN_C26) $(DRN_D22) $(R18_D8) $(DLV3_R18_D8)) \
	    --labels DRN-A-18 DRN-C-26 DRN-D-22 ResNetV1c-18-D8 'DeepLabV3 ResNetV1c-18-D8' \
	    --images $(addprefix data/drn_demo/img_dir/val/,$(DEMO_SCENES)) \
	    --ground-truth $(addprefix data/drn_demo/ann_dir/val/,$(DEMO_SCENES)) \
	    --predictions --levels --out $(COMPARE_DIR)/compare_predictions.png --force
	$(PYTHON) tools/analysis_tools/activation_maps.py \
	    $(call seed0,$(DRN_A18) $(DRN_C26)) --labels DRN-A-18 DRN-C-26 \
	    --images $(addprefix data/drn_demo/img_dir/val/,$(DEMO_SCENES)) --scale 4 \
	    --title 'channel mean of the last three levels (seed-0 models; scenes enlarged 4x)' \
	    --out $(COMPARE_DIR)/compare_gridding.png --force
