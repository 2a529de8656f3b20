# shrinkvec: one entry point. Every target sets itself up from a fresh clone (python3, gcc, make).
#
#   make demo    venv + package + extension into the embedded server, start it, load the demo data, search
#   make test    the same setup, then ruff + mypy --strict (make lint), pg_regress (installcheck), the framework
#                recipes (tests/frameworks, in .venv-frameworks with LangChain and LlamaIndex) and pytest:
#                every test, also the ones marked `slow` (kill -9 during inserts, builds, VACUUM and loads,
#                the 4 writers + 4 readers soak, the index and SQL-function fuzzing); CI runs this (~8 min on 2 cores)
#   make test-fast  the same without the `slow` tests (pytest -m 'not slow'): for the edit-test loop
#                (extra pytest arguments: make test-fast PYTEST_ARGS='tests/index -x')
#   make bench   benchmarks against pgvector and FAISS (bench/README.md)
#   make sanitize  CI-optional: the C kernels under AddressSanitizer + UBSan, then valgrind if installed
#   make clean   build outputs; make distclean also removes .venv, .venv-frameworks and the test server's data
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

.PHONY: all venv extension demo test test-fast lint bench sanitize clean distclean

all: extension

$(VENV)/.installed-%: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[$*]'
	@touch $@

venv: $(VENV)/.installed-test

# tests/frameworks runs LangChain and LlamaIndex (the `frameworks` extra) in a venv of its own: they pin
# SQLAlchemy < 2.1 and pgvector < 0.4, older than the main venv's (whose mypy --strict needs pgvector's types).
# It tests against the main venv's server (its own pgserver copy has no shrinkvec build).
FW_VENV := .venv-frameworks
$(FW_VENV)/.installed: pyproject.toml
	@test -x $(FW_VENV)/bin/python || $(PYTHON) -m venv $(FW_VENV)
	$(FW_VENV)/bin/python -m pip install --disable-pip-version-check -q -e '.[test,frameworks]'
	@touch $@

extension: $(VENV)/.installed-test
	@$(MAKE) -s -C extension install PG_CONFIG="$(PGC)"

demo: extension
	$(SV) demo

# ruff (style, imports), mypy --strict and codespell (pyproject.toml has their settings); make test runs it first
lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check pytools tests bench migrations devtools
	$(VENV)/bin/mypy
	$(VENV)/bin/codespell README.md CHANGELOG.md docs pytools extension/src extension/test sql tests bench devtools migrations Makefile

# pg_regress and pytest against the embedded server (its own data dir under .cache/), or against
# SHRINKVEC_TEST_DSN when set. The server started here is stopped at the end. tests/ is laid out by
# concern: unit/ (no server), sql/, index/, load/, api/, security/; tests/conftest.py has the fixtures.
PYTEST_ARGS ?=
PYTEST_MARK =
test-fast: PYTEST_MARK = -m 'not slow'
test-fast: test

FW_PYTEST = $(FW_VENV)/bin/python -m pytest -q tests/frameworks

ifdef SHRINKVEC_TEST_DSN
test: extension $(FW_VENV)/.installed
	@status=0; \
	$(MAKE) -s lint || status=1; \
	env $$($(SV) server env --dsn "$(SHRINKVEC_TEST_DSN)") $(MAKE) -s -C extension installcheck PG_CONFIG="$(PGC)" \
		|| { cat extension/regression.diffs 2>/dev/null; status=1; }; \
	$(FW_PYTEST) || status=1; \
	$(PY) -m pytest $(PYTEST_MARK) $(PYTEST_ARGS) || status=1; \
	exit $$status
else
test: extension $(FW_VENV)/.installed
	@$(PY) devtools/pgregress_fix.py >/dev/null
	@$(SV) server start --data-dir $(TEST_PGDATA) >/dev/null
	@status=0; \
	$(MAKE) -s lint || status=1; \
	env $$($(SV) server env --data-dir $(TEST_PGDATA)) $(MAKE) -s -C extension installcheck PG_CONFIG="$(PGC)" \
		|| { cat extension/regression.diffs 2>/dev/null; status=1; }; \
	SHRINKVEC_TEST_DSN="$$($(SV) server url --socket --data-dir $(TEST_PGDATA))" $(FW_PYTEST) || status=1; \
	SHRINKVEC_TEST_DATA_DIR=$(TEST_PGDATA) $(PY) -m pytest $(PYTEST_MARK) $(PYTEST_ARGS) || status=1; \
	$(SV) server stop --data-dir $(TEST_PGDATA) >/dev/null; \
	exit $$status
endif

bench: extension $(VENV)/.installed-bench
	$(PY) bench/run.py

# The SIMD kernels against the scalar ones with every input in an exact-size allocation, built with
# ASan + UBSan; then the same checks under valgrind (which has no AVX-512: capped at AVX2).
include extension/simd.mk
SAN := .cache/sanitize
SAN_CFLAGS := -std=gnu11 -O1 -g -fno-omit-frame-pointer -ffp-contract=off -Wall -Werror
KSRC := extension/src/kernels
SAN_PORTABLE := scalar dispatch tables composite
SAN_SRC := $(foreach f,$(SAN_PORTABLE) avx2 avx512,$(KSRC)/$(f).c) extension/test/kernels_check.c
sanitize: $(SAN_SRC) $(KSRC)/kernels.h $(KSRC)/topk_heap.h
	@mkdir -p $(SAN)
	@for mode in asan plain; do \
		extra=$$( [ $$mode = asan ] && echo "-fsanitize=address,undefined -fno-sanitize-recover=all" ); \
		objs=""; \
		for f in $(SAN_PORTABLE); do \
			gcc $(SAN_CFLAGS) $$extra -c $(KSRC)/$$f.c -o $(SAN)/$${f}_$$mode.o || exit 1; \
			objs="$$objs $(SAN)/$${f}_$$mode.o"; \
		done; \
		gcc $(SAN_CFLAGS) $$extra $(AVX2_FLAGS) -c $(KSRC)/avx2.c -o $(SAN)/avx2_$$mode.o && \
		gcc $(SAN_CFLAGS) $$extra $(AVX512_FLAGS) -c $(KSRC)/avx512.c -o $(SAN)/avx512_$$mode.o && \
		gcc $(SAN_CFLAGS) $$extra extension/test/kernels_check.c $$objs $(SAN)/avx2_$$mode.o \
			$(SAN)/avx512_$$mode.o -lm -o $(SAN)/kernels_check_$$mode || exit 1; \
	done
	@echo "== AddressSanitizer + UBSan"
	$(SAN)/kernels_check_asan
	@echo "== valgrind (memcheck, AVX2 and scalar)"
	@if command -v valgrind >/dev/null; then \
		valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite -q $(SAN)/kernels_check_plain 1; \
	else echo "valgrind is not installed: skipped (apt install valgrind)"; fi

clean:
	-@$(MAKE) -s -C extension clean PG_CONFIG="$(PGC)" 2>/dev/null || rm -f extension/*.so extension/src/*.o extension/src/*/*.o
	rm -rf .pytest_cache .hypothesis bench/results

distclean: clean
	-@test -x $(SV) && $(SV) server stop --data-dir $(TEST_PGDATA) >/dev/null 2>&1 || true
	rm -rf $(VENV) $(FW_VENV) .cache pytools/*.egg-info
