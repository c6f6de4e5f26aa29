# The two commands a newcomer needs:
#   make run    install, migrate, and run the web app and the worker on http://127.0.0.1:5000
#   make test   install, then lint and run the whole test suite
# And to measure it: make bench (the soak and the dashboard benchmark, bench/*/README.md).
# Needs Python 3.11+ (python3 on PATH, or PYTHON=...). Everything installs into .venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.testing: requirements.txt tests/requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r tests/requirements.txt
	touch $@ $(VENV)/.runtime

# TRUSTED_PROXIES, unless set (in the environment or .env): one proxy in front
# when BASE_URL is https (ngrok), none when the app is reached directly.
TRUSTED_PROXIES_FOR_RUN = $(BIN)/python -c 'import os, dotenv; \
	env = {**os.environ, **{k: v for k, v in dotenv.dotenv_values(".env").items() if v}}; \
	print(env.get("TRUSTED_PROXIES") or int(env.get("BASE_URL", "").startswith("https://")))'

run: $(VENV)/.runtime
	$(BIN)/flask db upgrade
	PATH="$(abspath $(BIN)):$$PATH" HOST="$${HOST:-127.0.0.1}" TRUSTED_PROXIES="$$($(TRUSTED_PROXIES_FOR_RUN))" \
		$(BIN)/honcho start --port "$${PORT:-5000}" web worker

# Browser tests use Debian's Chromium; install it when we can (root with apt),
# otherwise those tests skip and say why.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Chromium for the browser tests (apt-get)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

lint: $(VENV)/.testing
	$(BIN)/ruff check app tests bench wsgi.py gunicorn.conf.py
	$(BIN)/ruff format --check app tests bench wsgi.py gunicorn.conf.py

test: $(VENV)/.testing browser lint
	$(BIN)/python -m pytest

# Load tools, not tests: minutes each. The dashboard benchmark also needs PostgreSQL
# ($TEST_DATABASE_URL, else the local server) and makes a scratch database there.
bench: $(VENV)/.testing
	$(BIN)/python -m bench.soak
	$(BIN)/python -m bench.dashboard

clean:
	rm -rf $(VENV)
