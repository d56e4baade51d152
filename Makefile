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

.PHONY: install demo test docs docs-check bench transfer lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c "import torch" 2>/dev/null || \
	  $(PYTHON) -m pip install -q "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PYTHON) -m pip install -q -e ".[dev]"
	@mkdir -p $(dir $@) && touch $@

EHRKIT = $(PYTHON) -m ehrkit

demo: install
	@rm -rf $(OUT) && mkdir -p $(OUT)
	@echo "== notes: 30-day readmission as ClinicalBERT: cohort, clean, chunk, pretrain, fine-tune, predict, evaluate"
	$(EHRKIT) synth notes -n 3000 --seed 1 -o $(OUT)/notes.jsonl --admissions $(OUT)/admissions.jsonl
	$(EHRKIT) notes cohort --admissions $(OUT)/admissions.jsonl $(OUT)/notes.jsonl --readmission -o $(OUT)/discharge.parquet
	$(EHRKIT) notes clean $(OUT)/discharge.parquet -o $(OUT)/discharge.clean.parquet
	@$(EHRKIT) notes clean $(OUT)/discharge.clean.parquet --explode -q | head -n 2
	$(EHRKIT) notes chunk $(OUT)/discharge.clean.parquet -o $(OUT)/chunks.parquet
	$(EHRKIT) pretrain $(OUT)/discharge.clean.parquet --from-scratch --vocab-size 4000 --max-steps 60 --eval-every 30 --lr 1e-3 -o $(OUT)/mlm
	$(EHRKIT) finetune $(OUT)/chunks.parquet --init $(OUT)/mlm --label-field label --max-length 256 --epochs 4 --lr 1e-3 --eval-every 40 -o $(OUT)/readmit
	$(EHRKIT) predict $(OUT)/chunks.parquet -m $(OUT)/readmit -o $(OUT)/chunks.pred.parquet
	$(EHRKIT) evaluate $(OUT)/chunks.pred.parquet --aggregate clinicalbert --group-by hadm_id --patient-field subject_id --by split -o $(OUT)/readmit.metrics.jsonl
	@echo "== timelines: synthesise CLIF, tokenize, pretrain a tiny causal model"
	$(EHRKIT) synth clif -n 1000 --seed 1 -o $(OUT)/clif
	$(EHRKIT) timeline tokenize $(OUT)/clif --split --fit $(OUT)/vocab.json -o $(OUT)/timelines.parquet
	$(EHRKIT) pretrain $(OUT)/timelines.parquet --objective clm --vocab $(OUT)/vocab.json --chunk 512 --max-steps 60 --eval-every 30 --lr 2e-3 -o $(OUT)/clm
	@echo "== first 24 hours: embed with the causal model, probe in-hospital death, evaluate"
	$(EHRKIT) timeline tokenize $(OUT)/clif --split --vocab $(OUT)/vocab.json --cut 24h -o $(OUT)/first24h.parquet
	$(EHRKIT) embed $(OUT)/first24h.parquet -m $(OUT)/clm -o $(OUT)/first24h.emb.parquet
	$(EHRKIT) probe $(OUT)/first24h.emb.parquet --label-field same_admission_death -o $(OUT)/death.pred.parquet
	$(EHRKIT) evaluate $(OUT)/death.pred.parquet --patient-field patient_id --plots $(OUT)/plots -o $(OUT)/death.metrics.jsonl
	@echo "== done: models in $(OUT)/mlm, $(OUT)/readmit and $(OUT)/clm; metrics in $(OUT)/readmit.metrics.jsonl and $(OUT)/death.metrics.jsonl, plots in $(OUT)/plots"

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
	$(PYTHON) bench/pretrain.py
	$(PYTHON) bench/evaluate.py
	$(PYTHON) bench/embed.py
	$(PYTHON) bench/predict.py

# Gupta et al.'s transfer protocol on synthetic series: pretrained GRU features + L1 probes vs
# logistic regression on the benchmark's 714 hand-crafted statistics, across training fractions
transfer: install
	$(PYTHON) bench/transfer.py

lint: install
	$(PYTHON) -m ruff check ehrkit tests bench

clean:
	rm -rf $(OUT) .make .pytest_cache
