#!/usr/bin/env bash
# End-to-end test of the explorer's background jobs on the real SmolLM2 GGUF in a real terminal
# (tmux); issue #16, part 4, "Jobs that tell the truth". Skips (exit 0 with a note) without tmux.
#   (a) Esc right at start-up cancels the error model: every e_w and e_kv cell shows ? (none …),
#       the footer keeps "error model cancelled · R restarts", b says nothing builds it; R builds
#       it and the errors appear;
#   (b) b 60 (a KV budget of 60% of fp16) then p: a finite perplexity, the explorer still running;
#   (c) rank d_kv (192) for K with V compressed, in every layer, then p: a finite perplexity, still
#       running;
#   and M lists those jobs in the message log.
# Usage: Tests/E2E/jobs_tmux.sh [path/to/kvscope]   (run from the repository root)
set -euo pipefail
if ! command -v tmux >/dev/null; then echo "tmux not installed: skipping the jobs end-to-end test"; exit 0; fi
# shellcheck source=e2e_lib.sh
source "$(dirname "$0")/e2e_lib.sh"
need "$MODEL" "make models"
SESSION=jobs
# shellcheck source=tmux_lib.sh
source "$ROOT/Tests/E2E/tmux_lib.sh"

# alive_for TEXT [seconds]: like wait_for, but fails at once when the explorer has exited (the
# shell prints EXIT=… after it), so a crash is reported as one and not as a timeout.
alive_for() {
  local deadline=$((SECONDS + ${2:-20}))
  while [ $SECONDS -lt $deadline ]; do
    local s; s="$(screen)"
    grep -qF -- "$1" <<<"$s" && return 0
    grep -qE "^EXIT=[0-9]+" <<<"$s" && fail "the explorer exited while waiting for '$1'"
    sleep 0.1
  done
  fail "timed out waiting for '$1'"
}
# The layer table's rows: the left box (58 columns) of the lines that start with a layer number.
table_rows() { screen | cut -c1-58 | grep -E "^│ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ " || true; }

# Presses p, waits for the job to start and for DONE_TEXT on screen, and sets PPL to the perplexity it
# shows, which must be a finite number above 1 and for the current settings (LABEL names the
# scenario). It runs in the script's own shell, so a failure prints its FAIL line and the screen.
measure_perplexity() {
  local done_text=$1 label=$2
  T send-keys -t "$SESSION" p
  alive_for "(Esc cancels)" 10
  alive_for "$done_text" 240
  PPL="$(screen | sed -nE 's/.*perplexity ([^ ]+)  \(fp16 cache .*/\1/p' | head -1)"
  python3 -c "import math, sys; p = float(sys.argv[1]); sys.exit(0 if math.isfinite(p) and p > 1 else 1)" "$PPL" 2>/dev/null \
    || fail "($label) perplexity '$PPL' is not a finite number above 1"
  if screen | grep -qF "(settings changed since)"; then fail "($label) perplexity is not for the current settings"; fi
}

T -f /dev/null new-session -d -s "$SESSION" -x 120 -y 40 "cd '$ROOT' && PS1='READY> ' bash --norc --noprofile -i" \
  </dev/null >/dev/null 2>&1
SERVER_PID="$(T display-message -p -t "$SESSION" '#{pid}')"
T set-option -t "$SESSION" status off >/dev/null
wait_for "READY>"

# (a) Esc right at start-up. The error model is built in a second or two, so Esc goes out as soon
# as the screen shows and again until the cancellation shows (an Esc with nothing running only
# says so); if the build won the race, the test says that instead of passing.
T send-keys -t "$SESSION" "clear; TERM=xterm-256color '$BIN' tui '$MODEL' --text '$EVAL'; echo EXIT=\$?" Enter
deadline=$((SECONDS + 120))
until screen | grep -qF "e_w(K)"; do
  [ $SECONDS -lt $deadline ] || fail "the explorer did not open"
  sleep 0.05
done
for _ in $(seq 1 40); do
  T send-keys -t "$SESSION" Escape
  screen | grep -qF "error model cancelled" && break
  screen | grep -qF "error model ready" && fail "the error model was built before Esc reached it"
  sleep 0.05
done
alive_for "error model cancelled · R restarts" 10
ROWS="$(table_rows)"
[ "$(wc -l <<<"$ROWS")" -eq 30 ] || fail "expected 30 layer rows"
grep -qF "…" <<<"$ROWS" && fail "a cell still shows … with nothing running"
[ "$(grep -cE "^│ +[0-9]+( +[0-9]+){4} +\? +\? " <<<"$ROWS")" -eq 30 ] || fail "not every e_w and e_kv cell shows ?"
screen | grep -qF "e_w ?   e_kv ?" || fail "the knobs panel does not show e_w ? and e_kv ?"
T send-keys -t "$SESSION" b
alive_for "no error model (cancelled) and nothing is building it — press R to build it" 10
screen | grep -qF "still being built" && fail "b claims the model is being built"
screen | grep -qF "KV budget (% of fp16 bytes at L " && fail "b asked for a budget with no error model"
T send-keys -t "$SESSION" R
alive_for "error model ready" 120
# Its quantized tables are not needed (16 bits): no job runs, and every cell has its value.
sleep 0.5
ROWS="$(table_rows)"
[ "$(grep -cE "^│ +[0-9]+( +[0-9]+){4} +[0-9]+\.[0-9]{4} +[0-9]+\.[0-9]{4} " <<<"$ROWS")" -eq 30 ] \
  || fail "after R not every e_w and e_kv cell has a value"
screen | grep -qF "R restarts" && fail "the footer still says R restarts"

# (b) b 60, then p.
T send-keys -t "$SESSION" b
alive_for "KV budget (% of fp16 bytes at L " 10
T send-keys -t "$SESSION" BSpace BSpace 6 0 Enter
alive_for "allocated ranks and bits under 60.0% of fp16" 120
measure_perplexity "fp16 cache" b
PPL_B=$PPL

# (c) Back to the starting settings, K of layer 0 at rank d_kv (L: +8 up to 192), V left at its
# 95% rank, the same for every layer (a), then p.
T send-keys -t "$SESSION" u
alive_for "undone" 10
T send-keys -t "$SESSION" L L L L L L L L L L L L L L L L L L L L L L L L a
alive_for "applied layer 0's K and V setting to all layers" 10
alive_for "rank 192/192  bits 16" 10
V0="$(table_rows | head -1 | awk '{print $5}')"
[ "$V0" -lt 192 ] || fail "layer 0 V is not compressed (rank $V0)"
measure_perplexity ") on " c
PPL_C=$PPL

# The message log lists the jobs of all three, newest last.
T send-keys -t "$SESSION" M
alive_for "Message log:" 10
for line in "started error model" "error model cancelled" "allocated ranks and bits under 60.0%" "started perplexity"; do
  screen | grep -qF "$line" || fail "the message log lacks '$line'"
done
T send-keys -t "$SESSION" Escape
sleep 0.2
screen | grep -qF "Message log:" && fail "Esc did not close the message log"

T send-keys -t "$SESSION" q
alive_for "Quit without exporting? (y/n)" 10
T send-keys -t "$SESSION" y
wait_for "EXIT=0" 20
echo "PASS: jobs end-to-end: Esc at start-up then R; b 60 then p (perplexity $PPL_B); K at rank 192 with V compressed then p (perplexity $PPL_C) ($SECONDS s)"
