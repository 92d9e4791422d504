#!/usr/bin/env bash
# The newcomer test: clone this repository (HEAD of the current checkout, i.e. what is
# committed) into a temporary directory and run the README's two commands exactly as written
# there, then check that the main job produced reports and that the tests passed.
#
#   scripts/newcomer.sh            # several minutes: a fresh virtualenv, then the whole suite
#   KEEP=1 scripts/newcomer.sh     # keep the clone and the logs afterwards
#   NEWCOMER_QUICK=1 scripts/newcomer.sh  # the nested suite: three unit test files
#
# The commands are the lines of the README's first ```sh block, so editing the README without
# keeping them working fails this script. The nested test run gets RAPPORT_NEWCOMER_NESTED=1,
# so tests/integration/test_newcomer.py (which runs this script) skips itself there instead of
# recursing. Exit status 0 when both commands succeeded and the checks passed.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(git -C "$here" rev-parse --show-toplevel)"
readme="$repo/README.md"

# The README's first sh block, one command per line (comments and blank lines kept as written).
mapfile -t commands < <(awk '
  /^```sh[[:space:]]*$/ && !done { inside = 1; next }
  /^```/ && inside { inside = 0; done = 1; next }
  inside && $0 !~ /^[[:space:]]*(#|$)/ { print }
' "$readme")
if [ "${#commands[@]}" -ne 2 ]; then
  echo "newcomer: expected two commands in the README's first sh block, found ${#commands[@]}:" >&2
  printf '  %s\n' "${commands[@]}" >&2
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/rapport-newcomer.XXXXXX")"
cleanup() {
  status=$?
  if [ "$status" -eq 0 ] && [ -z "${KEEP:-}" ]; then
    rm -rf "$work"
  else
    echo "newcomer: clone and logs kept in $work" >&2
  fi
}
trap cleanup EXIT

git clone --quiet --no-hardlinks "$repo" "$work/rapport"
cd "$work/rapport"
echo "newcomer: cloned $(git rev-parse --short HEAD) into $work/rapport" >&2

# A newcomer's machine: nothing of ours in the environment, its own data and runtime
# directories (the embedded broker's address file, the report database), no virtualenv active.
while IFS='=' read -r name _; do
  case "$name" in RAPPORT_*|VIRTUAL_ENV|PYTHONPATH) unset "$name" 2>/dev/null || true ;; esac
done < <(env)
mkdir -p "$work/data" "$work/runtime"
export XDG_DATA_HOME="$work/data" RAPPORT_RUNTIME_DIR="$work/runtime"
export RAPPORT_NEWCOMER_NESTED=1
# The nested suite is the whole suite, as a newcomer runs it; NEWCOMER_QUICK=1 (what
# tests/integration/test_newcomer.py uses) runs three unit test files of the metric
# definitions only: the setup, the system parts and the test command are exercised all the
# same, and the run that started this script (CI's own fresh clone of the same commit) runs
# every tier (the unit tier nested too cost CI's 20-minute budget about a minute).
# `make test` reads which tests to run from TESTS_PARALLEL, TESTS_SERIAL and TESTS_BESIDE
# (the Makefile).
if [ -n "${NEWCOMER_QUICK:-}" ]; then
  export PYTEST_ADDOPTS="-m 'not slow'"
  export TESTS_PARALLEL="tests/unit/test_session_metrics.py tests/unit/test_shapes.py tests/unit/test_settings.py"
  export TESTS_SERIAL="" TESTS_BESIDE=""
else
  unset PYTEST_ADDOPTS TESTS_PARALLEL TESTS_SERIAL TESTS_BESIDE
fi

run_logged() {  # run_logged NAME COMMAND: the command line as written, output to NAME.log
  local name="$1" line="$2" started status
  started=$(date +%s)
  echo "newcomer: \$ $line" >&2
  set +e
  bash -c "$line" > "$work/$name.log" 2>&1
  status=$?
  set -e
  echo "newcomer: exit $status after $(( $(date +%s) - started )) s (log: $work/$name.log)" >&2
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$work/$name.log" >&2
  fi
  return "$status"
}

failed=0
run_logged first "${commands[0]}" || failed=1
run_logged second "${commands[1]}" || failed=1

# The main job's reports: out/reports.jsonl, one JSON report per line.
if ! python3 - out/reports.jsonl <<'EOF'
import json
import sys

path = sys.argv[1]
try:
    lines = open(path, encoding="utf-8").read().splitlines()
except OSError as error:
    sys.exit(f"newcomer: no reports: {error}")
if not lines:
    sys.exit(f"newcomer: {path} is empty")
sessions = []
for number, line in enumerate(lines, 1):
    report = json.loads(line)
    if not isinstance(report, dict) or "session_id" not in report or "roles" not in report:
        sys.exit(f"newcomer: {path}:{number} is not a session report")
    sessions.append(report["session_id"])
print(f"newcomer: {len(lines)} reports in {path}: {', '.join(sessions)}", file=sys.stderr)
EOF
then
  failed=1
fi

# The tests: the second command is the suite; its summary line must show passes, no failure.
summary="$(grep -E '[0-9]+ (passed|failed|errors?|skipped).* in [0-9.]+s' "$work/second.log" \
  | tail -n 1 || true)"
echo "newcomer: tests: ${summary:-no pytest summary found}" >&2
if ! grep -Eq '[0-9]+ passed' <<<"$summary" || grep -Eq '[0-9]+ (failed|error)' <<<"$summary"; then
  failed=1
fi

if [ "$failed" -ne 0 ]; then
  echo "newcomer: FAILED" >&2
  exit 1
fi
echo "newcomer: OK" >&2
