# Two commands on a fresh machine:  `make run` (set up, then generate from Korean prompts)  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: run test retrain

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Until the web app lands this generates from Korean prompts with the embedded models and writes PNGs.
run: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m demo.generate "흰 배경 왼쪽에 있는 큰 빨간 원" --seed 1 --no-refiner --out outputs/빨간-원.png
	HF_HUB_OFFLINE=1 $(PY) -m demo.generate "검은 배경 가운데에 있는 커다란 노란색 별" --seed 2 --num-images 4 --out outputs/노란-별.png

test: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

retrain: $(VENV)/.installed
	$(PY) -m miniworld.training all
	$(PY) -m ko_clip train --config embedded
