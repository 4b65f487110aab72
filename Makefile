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

# Main job: every registered algorithm x {arithmetic, countdown} x 2 seeds (warm starts built and cached
# first); rerunning resumes. Results under runs/quickstart/.
quickstart: setup
	$(BIN)/rlvr sweep sweeps/quickstart.yaml $(ARGS)

# The whole suite, inside a private network namespace with only loopback up: no test can reach off the machine.
test: setup
	unshare -n sh -c 'ip link set lo up && $(BIN)/python -m pytest -q $(ARGS)'

test-fast: setup
	unshare -n sh -c 'ip link set lo up && $(BIN)/python -m pytest -q -m "not slow" $(ARGS)'

bench: setup
	$(BIN)/python bench/sampler.py

clean:
	rm -rf $(VENV) .cache runs
