# Two commands on a fresh machine:  `make run` (set up, then start the app)  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 5000

.PHONY: run test retrain

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m miniworld.demo --out outputs

test: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

retrain: $(VENV)/.installed
	$(PY) -m miniworld.training all
