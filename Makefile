# The two commands a newcomer needs:
#   make run    install, migrate, and run the web app and the worker on http://127.0.0.1:5000
#   make test   install, then lint and run the whole test suite
# And to measure it: make bench (or make bench-quick), bench/*/README.md and BENCHMARKS.md.
# Needs Python 3.11+ (python3 on PATH, or PYTHON=...). Everything installs into .venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint tools bench bench-quick clean

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

# Browser tests use Debian's Chromium, and the benchmarks (and their smoke
# test) Debian's wrk; install them when we can (root with apt), otherwise
# those tests skip and say why.
tools:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing=" chromium"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing$$missing for the browser tests and benchmarks (apt-get)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(VENV)/.testing
	$(BIN)/ruff check app tests bench wsgi.py gunicorn.conf.py
	$(BIN)/ruff format --check app tests bench wsgi.py gunicorn.conf.py

test: $(VENV)/.testing tools lint
	$(BIN)/python -m pytest

# Benchmarks, not tests: each figure next to a baseline measured in the same run
# (bench/*/README.md, results in BENCHMARKS.md). Both stores: PostgreSQL and Redis
# from $TEST_DATABASE_URL and $TEST_REDIS_URL, else the local servers. Nothing else
# should run on the machine meanwhile. make bench takes about an hour (the
# dashboard at 100,000 calls is most of it); make bench-quick a few minutes.
bench: $(VENV)/.testing tools
	$(BIN)/python -m bench.webhooks
	$(BIN)/python -m bench.load
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.dashboard

bench-quick: $(VENV)/.testing tools
	$(BIN)/python -m bench.webhooks --quick
	$(BIN)/python -m bench.load --quick
	$(BIN)/python -m bench.pipeline --quick
	$(BIN)/python -m bench.dashboard --calls 2000 --requests 20

clean:
	rm -rf $(VENV)
