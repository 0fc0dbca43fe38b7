# kbqa: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# llama-cpp-python builds from source here; a portable build runs at the same speed.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export GRADIO_ANALYTICS_ENABLED := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test install install-dev examples clean help

help:
	@echo "make demo   - install the core, ingest examples/docs into the knowledge base 'demo', ask a question, serve the web chat"
	@echo "make test   - install everything (all extras) and run the whole test suite"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

$(VENV)/.core: pyproject.toml constraints.txt | $(BIN)/python
	@echo "Installing kbqa (llama-cpp-python compiles on the first install: 5-10 minutes) ..."
	$(PIP) install -q -c constraints.txt -e .
	@touch $@

$(VENV)/.dev: pyproject.toml constraints.txt | $(BIN)/python
	@echo "Installing kbqa with all extras (llama-cpp-python compiles on the first install: 5-10 minutes) ..."
	$(PIP) install -q -c constraints.txt -e '.[hf,milvus,dev]'
	@touch $@ $(VENV)/.core

install: $(VENV)/.core
install-dev: $(VENV)/.dev

demo: $(VENV)/.core
	$(BIN)/kbqa ingest examples/docs --kb demo
	$(BIN)/kbqa ask "How often should the RO membrane be replaced?" --kb demo
	$(BIN)/kbqa ask "星河科技的总部在哪里？" --kb demo
	$(BIN)/kbqa serve --kb demo

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

examples: $(VENV)/.core
	$(BIN)/python examples/make_docs.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
