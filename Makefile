# ehrkit: the two quickstart commands are `make demo` and `make test`.
#
# Both install ehrkit (editable, with its test tools) into the Python that PYTHON names.
# torch: when no torch is installed, the pinned TORCH_VERSION is installed first, which takes
# a local CPU build where pip is configured with one. To use a CUDA (or CPU-only) build from
# PyTorch's own index, install torch yourself first, or pass TORCH_INDEX=<index URL>.

PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
OUT ?= out
STAMP := .make/installed

.PHONY: install demo test docs docs-check bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c "import torch" 2>/dev/null || \
	  $(PYTHON) -m pip install -q "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PYTHON) -m pip install -q -e ".[dev]"
	@mkdir -p $(dir $@) && touch $@

demo: install
	@mkdir -p $(OUT)
	$(PYTHON) -m ehrkit synth notes -n 2000 --seed 1 -o $(OUT)/notes.jsonl --admissions $(OUT)/admissions.jsonl
	$(PYTHON) -m ehrkit notes clean $(OUT)/notes.jsonl -o $(OUT)/notes.clean.parquet
	@echo "first sentences of the cleaned notes:"
	@$(PYTHON) -m ehrkit notes clean $(OUT)/notes.clean.parquet --explode -q | head -n 3

test: install
	$(PYTHON) -m pytest -q

docs: install
	$(PYTHON) -m ehrkit.docs

docs-check: install
	$(PYTHON) -m ehrkit.docs --check

bench: install
	$(PYTHON) -m pip install -q -e ".[dev,bench]"
	$(PYTHON) bench/notes_clean.py
	$(PYTHON) bench/timeline_tokenize.py

lint: install
	$(PYTHON) -m ruff check ehrkit tests bench

clean:
	rm -rf $(OUT) .make .pytest_cache
