# EchoQuality + NHS lookup engine. `make demo` sets up and runs everything on embedded
# sample data; `make test` runs the test suite.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
DATA_DIR ?= raw_data
OUTPUT  ?= results/inference_output
WEIGHTS ?=
THRESHOLD ?= 0.3
export MLFLOW_DISABLE_TELEMETRY=true
export HF_HUB_OFFLINE=1

.PHONY: setup demo test lint inference analyze prepare-data train synth \
        lookup-demo lookup-train lookup-optimize lookup-validate serve benchmarks mlflow-ui clean-venv

setup: $(VENV)/.setup-stamp

# torch/torchvision are installed first with exact pins: on our x86_64 machines these
# wheels come from local disk (see README), and an unpinned torchvision would pull a
# different torch.
$(VENV)/.setup-stamp: pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PYTHON) -m pip install -q -e '.[all]'
	touch $@

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

# ---------------------------------------------------------------- EchoQuality
synth: setup
	$(BIN)/echoquality synth --output $(DATA_DIR) --seed 0

inference: setup
	$(BIN)/echoquality infer --data-dir $(DATA_DIR) --output $(OUTPUT) --threshold $(THRESHOLD) $(if $(WEIGHTS),--weights $(WEIGHTS),)

analyze: setup
	$(BIN)/echoquality analyze --results $(OUTPUT)

# LABELS=labels.csv adds human labels (path,label); LABELS alone with RESULTS= empty builds from them only.
LABELS  ?=
RESULTS ?= $(OUTPUT)
prepare-data: setup
	$(BIN)/echoquality prepare-data $(if $(RESULTS),--results $(RESULTS),) --output training_data $(if $(LABELS),--labels $(LABELS) --data-dir $(DATA_DIR),)

train: setup
	$(BIN)/echoquality train --annotations training_data/echo_annotations.csv --output trained_models $(if $(WEIGHTS),--weights $(WEIGHTS),)

# ---------------------------------------------------------------- NHS lookup
lookup-demo: setup
	$(BIN)/nhs-lookup lookup "CT Abdo/Pelvis C+" --modality CT

lookup-train: setup
	$(BIN)/nhs-lookup train

lookup-optimize: setup
	$(BIN)/nhs-lookup optimize

lookup-validate: setup
	$(BIN)/nhs-lookup validate

serve: setup
	$(BIN)/nhs-lookup serve

demo: setup
	$(BIN)/echoquality demo --workdir demo_output/echo
	$(BIN)/nhs-lookup demo --workdir demo_output/lookup

# Both systems log to this one store (echoquality train, nhs-lookup optimize).
mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlruns/mlflow.db}

benchmarks: setup
	$(PYTHON) benchmarks/inference.py
	$(PYTHON) benchmarks/lookup.py
	$(PYTHON) benchmarks/train.py
	$(PYTHON) benchmarks/api.py

clean-venv:
	rm -rf $(VENV)
