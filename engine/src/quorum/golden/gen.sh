#!/usr/bin/env bash
# Regenerates golden.txt from Java ZooKeeper's classes (Debian's zookeeper package).
# Usage: engine/src/quorum/golden/gen.sh [--check]   (--check: fail if golden.txt would change)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cp="/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
javac -d "$work" -cp "$cp" "$here/GenGolden.java"
java -cp "$work:$cp" org.apache.zookeeper.server.quorum.GenGolden > "$work/golden.txt" 2>/dev/null
if [ "${1:-}" = "--check" ]; then
  diff -u "$here/golden.txt" "$work/golden.txt"
else
  cp "$work/golden.txt" "$here/golden.txt"
fi
