#!/usr/bin/env bash
# The system parts the test suite uses, from Debian's packages, and a running PostgreSQL.
#
#   scripts/system-deps.sh      # `make test` and `.ci/run` call it; safe to run again
#
# Installs what is missing of: PostgreSQL (the report store's tests), Chromium (browser tests),
# espeak-ng and sox (spoken test audio), promtool (package prometheus) and docker-compose
# (tests/integration/test_deploy.py validates the deployment files with them), Java 17 and
# Maven (`make kafka` resolves Apache Kafka for tests/kafka through Maven). Then starts
# PostgreSQL on 127.0.0.1:5432 with a database `test` that user postgres reaches without a
# password from 127.0.0.1 only (tests/reportkit.py, RAPPORT_TEST_PG_URL overrides it).
#
# Without root (or passwordless sudo) nothing is installed: the script says what is missing and
# exits 0, and the tests needing a missing part skip saying why, except with CI=true, where a
# missing part fails its tests.
set -uo pipefail

log() { echo "system-deps: $*" >&2; }

sudo=""
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    sudo="none"
  fi
fi

# command-or-path -> Debian package
declare -A wanted=(
  [pg_ctlcluster]=postgresql
  [chromium]=chromium
  [espeak-ng]=espeak-ng
  [sox]=sox
  [promtool]=prometheus
  [java]=openjdk-17-jre-headless
  [mvn]=maven
)
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
# A `docker compose` plugin validates the compose file as well as docker-compose does.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  missing+=(docker-compose)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$sudo" = none ] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${missing[*]} (install them with apt-get as root); tests needing them skip"
  else
    log "installing ${missing[*]} from Debian's packages"
    # One update per run: a fresh machine's package lists may be empty or old.
    if ! { $sudo apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
          "${missing[@]}" >/dev/null; }; then
      log "apt-get could not install ${missing[*]}; tests needing them will fail in CI"
    fi
  fi
fi

# PostgreSQL: the distribution's cluster, started, with a trust line for the test database on
# loopback only (a developer's own databases keep their authentication), and the database.
# A cluster that is already running gets the line and the database too (it was started by
# hand, or by an earlier run): only starting it is skipped.
pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
if [ "$sudo" != none ] && command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$version" ]; then
  conf="/etc/postgresql/$version/main"
  hba="$conf/pg_hba.conf"
  marker="# rapport tests (scripts/system-deps.sh)"
  added=""
  if ! $sudo grep -qF "$marker" "$hba"; then
    # First match wins in pg_hba.conf: the line goes on top.
    $sudo sh -c "{ echo '$marker'; echo 'host test postgres 127.0.0.1/32 trust'; cat '$hba'; } \
      > '$hba.new' && chown --reference='$hba' '$hba.new' && chmod --reference='$hba' '$hba.new' \
      && mv '$hba.new' '$hba'"
    added=yes
  fi
  if ! pg_ready; then
    $sudo sed -i "s/^#\?port = .*/port = 5432/" "$conf/postgresql.conf"
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
      || $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    for _ in $(seq 1 50); do
      pg_ready && break
      sleep 0.2
    done
  elif [ -n "$added" ]; then
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true
  fi
  if pg_ready; then
    $sudo su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname = 'test'\"" \
      | grep -q 1 || $sudo su postgres -c "createdb test"
    log "PostgreSQL $version on 127.0.0.1:5432, database test"
  else
    log "PostgreSQL $version did not start; the PostgreSQL tests will fail in CI"
  fi
elif pg_ready; then
  log "PostgreSQL runs on 127.0.0.1:5432 but is not a cluster this script manages: the tests" \
    "need a database test that user postgres reaches without a password (RAPPORT_TEST_PG_URL)"
elif [ "$sudo" = none ] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
  log "PostgreSQL is not running on 127.0.0.1:5432; the PostgreSQL tests skip (fail with CI=true)"
else
  log "no PostgreSQL cluster in /etc/postgresql; the PostgreSQL tests will skip"
fi
exit 0
