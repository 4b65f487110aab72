# Two commands a new user needs:  `make quickstart` (set up + main job)  and  `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
ARGS    ?=

.PHONY: setup quickstart test test-fast bench clean

$(BIN)/rlvr: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# constraints.txt pins the CPU build of torch so a CPU machine never pulls CUDA wheels
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(BIN)/rlvr

setup: $(BIN)/rlvr

# Main job on the embedded default: warm start (cached) + GRPO on arithmetic; prints where results are.
quickstart: setup
	$(BIN)/rlvr run algo=grpo task=arithmetic budget.amount=20000 budget.eval_every=5000 $(ARGS)

# The whole suite, inside a private network namespace with only loopback up: no test can reach off the machine.
test: setup
	unshare -n sh -c 'ip link set lo up && $(BIN)/python -m pytest -q $(ARGS)'

test-fast: setup
	unshare -n sh -c 'ip link set lo up && $(BIN)/python -m pytest -q -m "not slow" $(ARGS)'

bench: setup
	$(BIN)/python bench/sampler.py

clean:
	rm -rf $(VENV) .cache runs
