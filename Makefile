# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PRESET ?= cpu-tiny
RUN_DIR ?= runs/default
ITERS ?= 8
AGENT ?= ppo

.PHONY: run test install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU torch first, pinned: the pip configuration on our machines resolves it to a local CPU wheel.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job: prepare the frozen env, calibrate the noise, let the agent research for ITERS iterations, report.
# Re-running resumes the campaign in RUN_DIR (a finished one just reports again).
run: $(STAMP)
	$(BIN)/arl prepare --preset $(PRESET)
	$(BIN)/arl run --preset $(PRESET) --agent $(AGENT) --max-iters $(ITERS) --run-dir $(RUN_DIR)
	$(BIN)/arl report --run-dir $(RUN_DIR)
	$(BIN)/arl status --run-dir $(RUN_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

clean:
	rm -rf $(VENV) runs .pytest_cache
