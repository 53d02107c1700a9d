# The two commands of the README: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv with the CPU build of torch 2.13.0 and the package (editable) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUNDLE := bundles/thyroid_ultrasound_gambling
# two workers (pytest-xdist), one thread each (tests/conftest.py): the suite on the 2-core CI machine
PYTEST_ARGS ?= -n 2 --durations=30

.PHONY: install demo test lint format clean lab

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Train the thyroid bundle on its synthetic dataset (generated on first run) with the cross-entropy
# baseline and with gambling adversarial nets, validate every epoch, evaluate each on the test split
# and print their tables side by side.
RUN_BUNDLE := cd $(BUNDLE) && ../../$(BIN)/python -m monai.bundle run --config_file
demo: install
	$(RUN_BUNDLE) "['configs/train.json','configs/train_ce.json','configs/demo.json']"
	$(RUN_BUNDLE) "['configs/train.json','configs/train_ce.json','configs/demo.json','configs/evaluate.json']"
	$(RUN_BUNDLE) "['configs/train.json','configs/demo.json']"
	$(RUN_BUNDLE) "['configs/train.json','configs/demo.json','configs/evaluate.json']"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# JupyterLab on the tutorials (the `tutorials` extra, kept out of `dev`: see setup.cfg)
lab: install
	$(BIN)/python -m pip install --quiet -e ".[tutorials]"
	$(BIN)/jupyter lab tutorials/

clean:
	rm -rf $(VENV) $(BUNDLE)/models $(BUNDLE)/eval $(BUNDLE)/data
