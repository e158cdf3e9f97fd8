# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PRESET ?= cpu-tiny
RUN_DIR ?= runs/default
ITERS ?= 8
AGENT ?= ppo

.PHONY: run test test-long install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU torch first, pinned: the pip configuration on our machines resolves it to a local CPU wheel.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job: prepare the frozen env, calibrate the noise, let the agent research for ITERS iterations,
# verify the best against the baseline on fresh seeds, report.
# Re-running resumes the campaign in RUN_DIR (a finished one just reports again).
run: $(STAMP)
	$(BIN)/arl prepare --preset $(PRESET)
	$(BIN)/arl run --preset $(PRESET) --agent $(AGENT) --max-iters $(ITERS) --run-dir $(RUN_DIR)
	$(BIN)/arl verify --run-dir $(RUN_DIR)
	$(BIN)/arl report --run-dir $(RUN_DIR)
	$(BIN)/arl status --run-dir $(RUN_DIR)

# The tests; the few long end-to-end runs with real training (24 kills of `arl run`, a Ray campaign that
# loses a worker) are a second tier: `make test-long`. CI runs both.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not long"

test-long: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m long

# Benchmarks (see BENCHMARKS.md for the full-size commands and the recorded results). Quick sizes by default:
# a few minutes each on 2 cores; run them on a quiet machine.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[ray]"
	$(BIN)/python benchmarks/search_efficiency.py --landscape synthetic,nb201:cifar100,hpobench:kc1 --seeds 10 --iters 100 --out benchmarks/results/search_quick.json
	$(BIN)/python benchmarks/loop_speed.py --iters 200 --out benchmarks/results/loop_speed_quick.json
	$(BIN)/python benchmarks/harness_overhead.py --iters 1 --synthetic-iters 30 --eval-repeats 1
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/scaleout.py --preset cpu-smoke --iters 4 --configs local:1,local:2,ray:2 --out benchmarks/results/scaleout_quick.json
	$(BIN)/python benchmarks/early_abort.py --preset cpu-tiny --hours 0.1 --out benchmarks/results/early_abort_quick.json

clean:
	rm -rf $(VENV) runs .pytest_cache
