#!/usr/bin/env bash
# End-to-end test of the explorer in a real terminal (tmux). Skips (exit 0 with a note) when tmux
# is not installed. Opens SmolLM2, changes rank and bits, checks the figures on screen against
# `kvscope spectra --json` (energy ranks) and the DESIGN.md §4 memory formula, exports a config,
# quits, and checks with `stty -a` that the terminal modes are restored.
# Usage: Tests/E2E/tui_tmux.sh [path/to/kvscope]   (run from the repository root)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$(cd "$(dirname "${1:-$ROOT/.build/debug/kvscope}")" && pwd)/$(basename "${1:-$ROOT/.build/debug/kvscope}")"
MODEL="$ROOT/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if ! command -v tmux >/dev/null; then echo "tmux not installed: skipping the TUI end-to-end test"; exit 0; fi
[ -x "$BIN" ] || { echo "missing $BIN (swift build first)"; exit 1; }
[ -f "$MODEL" ] || { echo "missing $MODEL (make models)"; exit 1; }
SOCK="kvscope-e2e-$$"
WORK="$(mktemp -d)"
T() { tmux -L "$SOCK" "$@"; }
SERVER_PID=""
cleanup() {
  T kill-server 2>/dev/null || true
  # kill-server has been seen to leave the server behind; end it by its own pid.
  [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- screen ---"; T capture-pane -p -t e2e || true; exit 1; }
# wait_for TEXT [seconds]: poll the screen until TEXT appears.
wait_for() {
  local deadline=$((SECONDS + ${2:-20}))
  while [ $SECONDS -lt $deadline ]; do
    T capture-pane -p -t e2e | grep -qF -- "$1" && return 0
    sleep 0.1
  done
  fail "timed out waiting for '$1'"
}
screen() { T capture-pane -p -t e2e; }

# A shell in a 120x40 window; record its terminal modes first.
# The server must not hold our stdout open (a caller reading it to EOF would wait forever).
T -f /dev/null new-session -d -s e2e -x 120 -y 40 "cd '$WORK' && PS1='READY> ' bash --norc --noprofile -i" \
  </dev/null >/dev/null 2>&1
SERVER_PID="$(T display-message -p -t e2e '#{pid}')"
T set-option -t e2e status off >/dev/null
wait_for "READY>"
T send-keys -t e2e "stty -a > before.txt; echo STTY-SAVED" Enter
wait_for "STTY-SAVED"

T send-keys -t e2e "TERM=xterm-256color '$BIN' tui '$MODEL'; echo EXIT=\$?" Enter
wait_for "e_w(K)" 60
wait_for "error model ready" 60

# Reference figures from the CLI: energy ranks (r_0.95) of layer 0 from `kvscope spectra`.
"$BIN" spectra "$MODEL" --json > "$WORK/spectra.json"
read -r K0 V0 <<<"$(python3 -c "import json,sys; d=json.load(open('$WORK/spectra.json')); l=d['layers'][0]; print(l['k']['energy_rank']['0.95'], l['v']['energy_rank']['0.95'])")"
screen | grep -qE "^│ +0 +$K0 16 +$V0 16 " || fail "layer 0 does not start at the CLI's 95% ranks K $K0 V $V0"

# Rank +3 then -8 (Shift), bits down twice (16 -> 8 -> 6), window +8.
T send-keys -t e2e l l l H - - ]
R=$((K0 + 3 - 8))
wait_for "rank $R/192  bits 6"
wait_for "window 40"
# Expected memory (DESIGN.md §4), all layers at their CLI 95% ranks except layer 0 K.
read -r TOTAL EFF <<<"$(python3 - "$WORK/spectra.json" "$R" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); r0 = int(sys.argv[2])
L, w, dkv = 8192, 40, 192
base = comp = 0.0
for i, l in enumerate(d['layers']):
    base += 2 * L * dkv * 2
    for kind in ('k', 'v'):
        r, b = int(l[kind]['energy_rank']['0.95']), 16
        if i == 0 and kind == 'k': r, b = r0, 6
        meta = 0 if b == 16 else 4
        comp += min(L, w) * dkv * 2 + max(L - w, 0) * (r * b / 8 + meta)
print("%.2f" % (comp / 1048576), "%.1f%%" % ((1 - comp / base) * 100))
PY
)"
wait_for "total $TOTAL MiB"
wait_for "effective $EFF"

# A resize redraws (compact layout), and back.
T resize-window -t e2e -x 80 -y 24
wait_for "e_w"
T resize-window -t e2e -x 60 -y 20
wait_for "terminal too small"
T resize-window -t e2e -x 120 -y 40
wait_for "e_w(K)"

# Export with the default name; a second export asks before overwriting.
T send-keys -t e2e e
wait_for "Export config as"
T send-keys -t e2e Enter
wait_for "exported SmolLM2-135M-Instruct.kvscope.json"
[ -f "$WORK/SmolLM2-135M-Instruct.kvscope.json" ] || fail "config file not written"
python3 - "$WORK/SmolLM2-135M-Instruct.kvscope.json" "$R" <<'PY' || fail "exported config does not hold the settings"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["format"] == "kvscope-config" and c["version"] == 1
l0 = c["kv_cache"]["layers"][0]
assert l0["k"] == {"rank": int(sys.argv[2]), "bits": 6}, l0
assert c["kv_cache"]["window"] == 40
PY
T send-keys -t e2e e
wait_for "Export config as"
T send-keys -t e2e Enter
wait_for "exists. Overwrite? (y/n)"
T send-keys -t e2e n
wait_for "not exported"

# Unexported changes ask before quitting; n stays, y quits with status 0.
T send-keys -t e2e l q
wait_for "Quit without exporting? (y/n)"
T send-keys -t e2e n
sleep 0.2
screen | grep -qF "Quit without exporting" && fail "n did not close the question"
T send-keys -t e2e q
wait_for "Quit without exporting? (y/n)"
T send-keys -t e2e y
wait_for "EXIT=0"
T send-keys -t e2e "stty -a > after.txt; echo STTY-DONE" Enter
wait_for "STTY-DONE"
diff "$WORK/before.txt" "$WORK/after.txt" >/dev/null || { diff "$WORK/before.txt" "$WORK/after.txt"; fail "terminal modes differ after quitting"; }

# SIGTERM restores the terminal too (the process is signalled by its own pid).
T send-keys -t e2e "TERM=xterm-256color '$BIN' tui '$MODEL' & echo \$! > pid.txt; fg; echo EXIT=\$?" Enter
wait_for "e_w(K)" 60
kill -TERM "$(cat "$WORK/pid.txt")"
wait_for "EXIT=143" 10
T send-keys -t e2e "stty -a > after2.txt; echo STTY-DONE2" Enter
wait_for "STTY-DONE2"
diff "$WORK/before.txt" "$WORK/after2.txt" >/dev/null || fail "terminal modes differ after SIGTERM"

# So does Ctrl-C.
T send-keys -t e2e "clear; TERM=xterm-256color '$BIN' tui '$MODEL'; echo EXIT=\$?" Enter
wait_for "e_w(K)" 60
T send-keys -t e2e C-c
wait_for "EXIT=130" 10
T send-keys -t e2e "stty -a > after3.txt; echo STTY-DONE3" Enter
wait_for "STTY-DONE3"
diff "$WORK/before.txt" "$WORK/after3.txt" >/dev/null || fail "terminal modes differ after Ctrl-C"
echo "PASS: TUI end-to-end ($SECONDS s)"
