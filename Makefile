# Two commands on a fresh machine:  `make run` (set up, then start the web app)  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test retrain browser

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# The web app on the embedded models at http://127.0.0.1:5000/ (PORT=8000 make run for another port).
run: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m demo --port $(or $(PORT),5000)

# The browser tests drive Debian's Chromium; fonts-nanum draws the Hangul in their screenshots.
browser:
	@[ -x /usr/bin/chromium ] && fc-list | grep -qi nanum || \
	  ($(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-nanum)

test: $(VENV)/.installed browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

retrain: $(VENV)/.installed
	$(PY) -m miniworld.training all
	$(PY) -m ko_clip train --config embedded
