# Two commands for a newcomer (see README): `make run` and `make test`.
# Both create the virtualenv on first use; nothing else needs installing first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system-deps kafka run test sdk-test lint api-fuzz bench bench-sdk bench-engine bench-pipeline bench-worker bench-reports bench-vad clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# constraints.txt: the exact versions of the libraries streams/kafka.py overrides.
	# pip byte-compiles what it installs: keep it. Where PYTHONDONTWRITEBYTECODE=1 (CI's
	# machines), Python never writes what it compiles on import, and without pip's .pyc every
	# process compiled its libraries again (1.3 s more per worker; the suite 2 minutes slower).
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,silero]'
	# The silero VAD backend's model file (its tests run in CI): the wheel's metadata asks for
	# torch, which the ONNX file does not need, hence --no-deps (pyproject.toml, extra silero).
	$(BIN)/python -m pip install --quiet --no-deps 'silero-vad>=5.1'
	touch $(STAMP)

setup: $(STAMP)

# The main job on the embedded defaults: the embedded broker, a streaming worker and three
# simulated 10-minute sessions; final reports in out/reports.jsonl and as tables on stdout.
run: $(STAMP)
	mkdir -p out
	$(BIN)/rapport run --sessions 3 --minutes 10 --seed 1 --reports out/reports.jsonl \
		--dead-letters out/dead-letters.jsonl --summary --exit-when-done

# The system parts the tests use (PostgreSQL started, Chromium, espeak-ng, sox, promtool), from
# Debian's packages; without root it only says what is missing.
system-deps:
	bash scripts/system-deps.sh

# Apache Kafka's broker and tools (deploy/kafka/pom.xml) from Maven Central into ~/.m2, and
# their classpath for `rapport kafka` and tests/kafka (Java 17+ and Maven: system-deps).
# Resolves again when the pom changed or a listed jar is gone; nothing is fetched at test time.
# Without Maven it says so and tests/kafka skip, except with CI=true, where it fails.
KAFKA_CLASSPATH := deploy/kafka/target/classpath.txt

kafka:
	@if [ -f $(KAFKA_CLASSPATH) ] && [ $(KAFKA_CLASSPATH) -nt deploy/kafka/pom.xml ] \
		&& tr ':' '\n' < $(KAFKA_CLASSPATH) | xargs ls >/dev/null 2>&1; then \
		echo "make kafka: $(KAFKA_CLASSPATH) is up to date"; \
	elif ! command -v mvn >/dev/null 2>&1; then \
		echo "make kafka: Maven not found (scripts/system-deps.sh installs it as root);" \
			"tests/kafka will skip"; \
		[ "$${CI:-}" != true ]; \
	else \
		mvn -B -q -Dstyle.color=never -f deploy/kafka/pom.xml dependency:build-classpath \
			-Dmdep.outputFile=target/classpath.txt && touch $(KAFKA_CLASSPATH) \
			&& echo "make kafka: wrote $(KAFKA_CLASSPATH)"; \
	fi

# What `make test` runs in parallel, then one at a time, and beside those one at a time
# (scripts/newcomer.sh narrows them).
TESTS_PARALLEL ?= tests/unit tests/component
TESTS_SERIAL ?= tests/kafka tests/integration
# The newcomer tests (a fresh clone's `make run` and `make test`: about two minutes, mostly
# pip) run beside the serial tiers at the lowest CPU priority. Those tiers wait on brokers,
# browsers and killed workers and leave about half of two cores idle (7-56 % busy, measured
# 2026-12-06); at nice 19 the newcomer run takes only what they leave, and the suite is about
# two minutes shorter. The Kafka tier runs first (about five minutes), so the newcomer run is
# over before the browser tests start: a browser test it overlapped failed once in CI (22
# dead letters, seen once before without it), so the browser tests run as they always did.
# Their output follows the serial tiers'.
TESTS_BESIDE ?= tests/integration/test_newcomer.py

test: $(STAMP) system-deps kafka
	# Rapport's own modules byte-compiled once: the suite starts hundreds of processes, and
	# with PYTHONDONTWRITEBYTECODE=1 each would compile them again (stale files are ignored).
	$(BIN)/python -m compileall -q models streams services
	# The unit and component tiers on up to four processes (pytest-xdist; each test has its own
	# ports and tmp_path): about 80 s less on two cores. The tiers with brokers, browsers and
	# killed workers run one test at a time, as their timeouts assume, with TESTS_BESIDE
	# beside them (above). Every run always runs; any failing fails the target.
	status=0; beside=""; \
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 $(TESTS_PARALLEL) || status=$$?; \
	if [ -n "$(strip $(TESTS_BESIDE))" ]; then \
		mkdir -p build; \
		nice -n 19 $(BIN)/python -m pytest -q -p no:cacheprovider $(TESTS_BESIDE) \
			> build/tests-beside.log 2>&1 & beside=$$!; \
	fi; \
	if [ -n "$(strip $(TESTS_SERIAL))" ]; then \
		$(BIN)/python -m pytest -q $(TESTS_SERIAL) \
			$(addprefix --ignore=,$(TESTS_BESIDE)) || status=$$?; \
	fi; \
	if [ -n "$$beside" ]; then \
		wait $$beside || status=$$?; \
		echo "== $(TESTS_BESIDE), run beside (build/tests-beside.log):"; \
		cat build/tests-beside.log; \
	fi; \
	exit $$status

# The browser SDK's unit tests (clients/js/test, Node's built-in runner; `make test` runs them
# too, through tests/unit/test_sdk_js.py).
sdk-test:
	cd clients/js && node --test test/*.test.js

lint: $(STAMP)
	$(BIN)/ruff check models streams services tests bench
	$(BIN)/mypy

# schemathesis against a running job's /openapi.json, longer than the test suite's run (25
# examples per operation and phase): no 5xx, no answer outside the description, and every
# schema-valid request accepted (tests/integration/test_api_schema_fuzz.py).
api-fuzz: $(STAMP)
	RAPPORT_API_FUZZ_EXAMPLES=$${RAPPORT_API_FUZZ_EXAMPLES:-1000} $(BIN)/python -m pytest -q \
		-p no:cacheprovider tests/integration/test_api_schema_fuzz.py

# Each benchmark prints its figures and targets in one run; README "Performance" records them.
bench: bench-engine bench-pipeline bench-worker bench-reports bench-vad bench-sdk

bench-engine: $(STAMP)
	$(BIN)/python bench/engine.py

# On the embedded broker and a real 1-broker Kafka (its jars: `make kafka`).
bench-pipeline: $(STAMP) kafka
	$(BIN)/python bench/pipeline.py

# A worker's own per-record processing, stage by stage, without Kafka (issue 15 point 5).
bench-worker: $(STAMP)
	$(BIN)/python bench/worker_path.py

bench-reports: $(STAMP)
	$(BIN)/python bench/reports_list.py

bench-vad: $(STAMP)
	$(BIN)/python bench/vad.py

# The SDK's cost in a headless Chromium page: CPU at 20 ms sampling and bytes sent per minute.
bench-sdk: $(STAMP)
	$(BIN)/python bench/sdk.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
