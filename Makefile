# shrinkvec: one entry point. Every target sets itself up from a fresh clone (python3, gcc, make).
#
#   make demo    venv + package + extension into the embedded server, start it, load the demo data, search
#   make test    the same setup, then pg_regress (installcheck) and pytest
#   make bench   benchmarks against pgvector and FAISS (bench/README.md)
#   make clean   build outputs; make distclean also removes .venv and the test server's data
#
# Another PostgreSQL 15-18 with pgvector:
#   make test PG_CONFIG=/usr/lib/postgresql/17/bin/pg_config SHRINKVEC_TEST_DSN=postgresql://...

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SV := $(VENV)/bin/shrinkvec
TEST_PGDATA := $(CURDIR)/.cache/test-pgdata

# Without PG_CONFIG, build against the embedded server's pg_config (known once the venv exists).
PG_CONFIG ?=
PGC = $(if $(PG_CONFIG),$(PG_CONFIG),$$($(SV) server pg-config))

.PHONY: all venv extension demo test regress pytest bench clean distclean

all: extension

$(VENV)/.installed-%: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[$*]'
	@touch $@

venv: $(VENV)/.installed-test

extension: $(VENV)/.installed-test
	@$(MAKE) -s -C extension install PG_CONFIG="$(PGC)"

demo: extension
	$(SV) demo

# pg_regress and pytest against the embedded server (its own data dir under .cache/), or against
# SHRINKVEC_TEST_DSN when set. The server started here is stopped at the end.
ifdef SHRINKVEC_TEST_DSN
test: extension
	@status=0; \
	env $$($(SV) server env --dsn "$(SHRINKVEC_TEST_DSN)") $(MAKE) -s -C extension installcheck PG_CONFIG="$(PGC)" \
		|| { cat extension/regression.diffs 2>/dev/null; status=1; }; \
	$(PY) -m pytest || status=1; \
	exit $$status
else
test: extension
	@$(PY) -m shrinkvec.pgregress_fix >/dev/null
	@$(SV) server start --data-dir $(TEST_PGDATA) >/dev/null
	@status=0; \
	env $$($(SV) server env --data-dir $(TEST_PGDATA)) $(MAKE) -s -C extension installcheck PG_CONFIG="$(PGC)" \
		|| { cat extension/regression.diffs 2>/dev/null; status=1; }; \
	SHRINKVEC_TEST_DATA_DIR=$(TEST_PGDATA) $(PY) -m pytest || status=1; \
	$(SV) server stop --data-dir $(TEST_PGDATA) >/dev/null; \
	exit $$status
endif

bench: extension $(VENV)/.installed-bench
	$(PY) bench/run.py

clean:
	-@$(MAKE) -s -C extension clean PG_CONFIG="$(PGC)" 2>/dev/null || rm -f extension/*.so extension/src/*.o
	rm -rf .pytest_cache .hypothesis bench/results

distclean: clean
	-@test -x $(SV) && $(SV) server stop --data-dir $(TEST_PGDATA) >/dev/null 2>&1 || true
	rm -rf $(VENV) .cache pytools/*.egg-info
