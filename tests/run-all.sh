#!/usr/bin/env bash
# Runs every test of Ringkeeper. On a fresh Debian machine (root, package registries reachable)
# it first installs what the tests need: Java ZooKeeper and zkCli.sh (Debian's zookeeper and
# zookeeper-bin, the reference the differential test compares against), a Java runtime, libfaketime
# (test_clock.py steps a server's wall clock), and the Python clients (kazoo, pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

need=()
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
[ -x /usr/share/zookeeper/bin/zkCli.sh ] || need+=(zookeeper-bin)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ -f /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need+=(faketime)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ -f /usr/share/java/servlet-api.jar ] || need+=(libservlet-api-java)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -c 'import kazoo, pytest, prometheus_client' 2>/dev/null || {
  log "installing kazoo, pytest and prometheus_client (pip)"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore kazoo pytest prometheus_client
}

log "quorum codec golden bytes still match Java ZooKeeper's own classes"
engine/src/quorum/golden/gen.sh --check

log "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "criterion benchmarks compile (not timed)"
cargo bench -p ringkeeper-bench --no-run --quiet

log "Rust unit and integration tests"
cargo test --workspace --quiet

log "Python tests: kazoo, recipes, zkCli.sh, differential against Java ZooKeeper, hostile clients"
cargo build --quiet
# The hostile-client tests (test_hostile.py) bound latency and memory on the release build.
cargo build --release --quiet
cd tests/py
python3 -m pytest -q -p no:cacheprovider
