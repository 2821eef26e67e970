#!/usr/bin/env bash
# Runs every end-to-end script in Tests/E2E (each *_tmux.sh / *_e2e.sh) against one kvscope binary.
# `make test` calls it after `swift test`. Each script skips itself (exit 0) when tmux is missing.
# Usage: Tests/E2E/run.sh path/to/kvscope
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${1:-$ROOT/.build/release/kvscope}"
status=0
for script in "$ROOT"/Tests/E2E/*_tmux.sh "$ROOT"/Tests/E2E/*_e2e.sh; do
  [ -f "$script" ] || continue
  name="$(basename "$script")"
  echo "e2e: $name"
  if ! (cd "$ROOT" && timeout 300 bash "$script" "$BIN"); then
    echo "e2e: $name FAILED"; status=1
  fi
done
exit $status
