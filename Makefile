# The two commands of the README. Everything else is setup they pull in.
#   make demo   set up, start local Kafka + Cassandra (kflow dev up), run the main job
#   make test   set up, run the whole test suite (starts the local servers itself if they are not up)
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test setup down chaos release-schemas

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kflow needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/kflow dev up
	$(VENV)/bin/kflow dev smoke
	$(VENV)/bin/kflow dev demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest

down: $(STAMP)
	$(VENV)/bin/kflow dev down

# Freeze this release's wire contract (docs/evolution.md): make release-schemas VERSION=0.2.0
release-schemas: $(STAMP)
	@test -n "$(VERSION)" || (echo "usage: make release-schemas VERSION=x.y.z" >&2; exit 2)
	$(VENV)/bin/python tools/release_schemas.py $(VERSION)

# The long chaos run (issue 10): every fault on a private 3-broker cluster, then the 1-broker restart
chaos: $(STAMP)
	$(VENV)/bin/python -m bench.chaos
	$(VENV)/bin/python -m bench.chaos --brokers 1 --no-private-cassandra --runs 100 --duration 150 \
		--faults kill-processor,restart-broker,zombie,restart-broker
