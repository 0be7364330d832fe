# Two commands on a fresh machine:  `make run` (set up, then start the web app)  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-fast stress lint retrain browser redis translations

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

# The job queue and API tests run on both backends; for Redis the tests start Debian's redis-server themselves, on a
# free loopback port, and stop it after (tests/web/conftest.py). Installing the package may start the system service
# too; the tests never use it.
redis:
	@command -v redis-server >/dev/null || \
	  ($(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)

# Every test (what CI runs).
test: $(VENV)/.installed browser redis
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

# The inner loop, under 60 s on an idle 2-core machine: all but the tiers marked in pyproject.toml (tests over ~1 s,
# Redis server, torchrun, Chromium).
test-fast: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow and not redis and not distributed and not browser"

# The web, queue and search tests 20 times in a row (STRESS=N for another count), stopping at the first failure.
# The browser tests (each on its own context, in any order) drive Chromium and stay out; `make test` runs them.
stress: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -x -m "not browser" --count $(or $(STRESS),20) --repeat-scope session \
	  tests/web tests/search

# Ruff and mypy with the settings in pyproject.toml (line length 120). CI runs it before `make test`.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy demo ko_clip

retrain: $(VENV)/.installed
	$(PY) -m miniworld.training all
	$(PY) -m ko_clip train --config embedded

# The web app's messages: extract the marked strings (N_, _, gettext) into the template, merge it into every
# catalog under demo/web/translations/, and compile the .mo files the app reads (committed, so `make run` needs no
# step). Fill in new msgstr entries between `update` and `compile`; tests/web/test_i18n.py fails on any left empty.
translations: $(VENV)/.installed
	$(VENV)/bin/pybabel extract -F demo/web/babel.cfg -k N_ --no-location --sort-output --omit-header \
	  -o demo/web/translations/messages.pot .
	$(VENV)/bin/pybabel update -i demo/web/translations/messages.pot -d demo/web/translations --width 120
	$(VENV)/bin/pybabel compile -d demo/web/translations --statistics
