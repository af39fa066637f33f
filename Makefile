# Two commands on a fresh machine: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
export UV_COMPILE_BYTECODE := 1
export UV_LINK_MODE := copy
PY := .venv/bin/python
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
# A project-local Airflow home: SQLite metadata DB, our DAGs, no examples.
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW_DATASYNC_MANIFEST_STORE := $(CURDIR)/.airflow/datasync/executions

.PHONY: setup test faults scale demo clean samba chromium azurite postgres redis bench bench-full profile-smb bytecode fuse-mount

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --quiet
	touch $@

setup: .venv/.synced

# The SMB tests start a private smbd on 127.0.0.1 (Debian package samba).
samba:
	@command -v smbd >/dev/null || test -x /usr/sbin/smbd || (apt-get update && apt-get install -y --no-install-recommends samba)

# The scale-out tests (tests/scale) run a real Celery deployment: PostgreSQL as the metadata database and Redis
# as the broker, both Debian packages started by the tests on 127.0.0.1 in private directories.
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends postgresql)

redis:
	@command -v redis-server >/dev/null || (apt-get update && apt-get install -y --no-install-recommends redis-server)

# The browser tests (pages, connection form) drive Debian's Chromium through Playwright (a dev dependency in
# uv.lock); Playwright's own browser download cannot work on a closed network, so tests use /usr/bin/chromium.
chromium:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

# The Azure Blob tests start Azurite (npm package, pinned with its lock in tests/azurite) on 127.0.0.1.
AZURITE := .tools/azurite/node_modules/.bin/azurite-blob
$(AZURITE): tests/azurite/package.json tests/azurite/package-lock.json
	@command -v npm >/dev/null || (apt-get update && apt-get install -y --no-install-recommends nodejs npm)
	mkdir -p .tools/azurite
	cp tests/azurite/package.json tests/azurite/package-lock.json .tools/azurite/
	npm ci --prefix .tools/azurite --no-audit --no-fund --loglevel=error
	touch $@

azurite: $(AZURITE)

test: setup samba chromium azurite
	$(PY) -m ruff check .
	$(PY) -m pytest -x -q

# The fault suite's long cases (many kill -9s, server restarts, the property-based model), then the figures
# table of docs/reliability.md rewritten from what this run recorded. CI runs it after `make test`.
faults: setup samba chromium azurite
	rm -rf .faults/figures
	$(PY) -m pytest -q -m 'not slow' tests/faults
	$(PY) -m tests.faults.render

# A real Celery deployment (issue 15): PostgreSQL, Redis, scheduler, dag-processor, triggerer, api-server and
# two Celery workers that share no directory, running sync DAGs over S3 and SMB (tests/scale, marked scale).
scale: setup samba postgres redis
	$(PY) -m pytest -q -m scale tests/scale

demo: setup
	$(PY) -m airflow_datasync.demo

# Benchmarks (issue 5): our engine against rclone, cp and aws s3 sync on the same data, same run.
# Data, servers' state and logs live in bench/work/ (gitignored); results in bench/results/<date>.json and
# the table in docs/benchmarks.md. BENCH_ARGS passes flags through, e.g. BENCH_ARGS='--runs 5 --big-mib 200'.
# Our own package's bytecode: uv compiles the installed packages, not this editable checkout, and these
# machines export PYTHONDONTWRITEBYTECODE=1, so without it every CLI or Airflow task process measured
# would compile our modules from source again (a fixed cost no installed wheel pays; docs/benchmarks.md).
bytecode: setup
	$(PY) -m compileall -q -j 0 airflow_datasync >/dev/null

# The mounted-file-system rows (bench/mounts.py, issue 16): libfuse 3 and mfusepy for bench/delayed_fs.py, in
# a venv of their own under bench/work (never the project's locked .venv).
fuse-mount: setup
	@command -v fusermount3 >/dev/null || (apt-get update && apt-get install -y --no-install-recommends fuse3)
	@test -x bench/work/fuse-venv/bin/python || ($(UV) venv -q --python $(PY) bench/work/fuse-venv && \
		$(UV) pip install -q --python bench/work/fuse-venv/bin/python mfusepy)

bench: setup samba bytecode fuse-mount
	$(PY) -m bench.run --profile quick $(BENCH_ARGS)

bench-full: setup samba bytecode fuse-mount
	$(PY) -m bench.run --profile full $(BENCH_ARGS)

# One run of our CLI on an SMB bench row under py-spy (a dev dependency), summarised by layer into
# bench/results/<date>-profile-<scenario>.md. SCENARIO: local-smb smb-local smb-s3 s3-smb rerun-smb; DATASET:
# small (5,000 × 4 KiB) or big (2 × 500 MiB); PROFILE_ARGS passes flags through, e.g. PROFILE_ARGS=--gil.
SCENARIO ?= local-smb
DATASET ?= small
profile-smb: setup samba bytecode
	$(PY) -m bench.profile --scenario $(SCENARIO) --dataset $(DATASET) --results $(PROFILE_ARGS)

clean:
	rm -rf .venv .tools .airflow demo-data bench/work
