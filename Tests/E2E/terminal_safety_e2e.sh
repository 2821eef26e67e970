#!/usr/bin/env bash
# Terminal safety end to end (tmux): the explorer restores the terminal however it ends.
# For SIGINT, SIGTERM, SIGHUP and a forced crash (the hidden KVSCOPE_DEBUG_CRASH_AFTER_MS variable)
# it checks the exit status, that `stty -a` equals its value before, that the cursor is visible and
# the alternate screen is off (tmux's own flags), and that the shell prompt works. Then a storm of
# resizes (the process lives and the screen redraws to the same picture) and a 1×1 terminal (no
# crash, "too small" when tiny, normal again after the resize back), and a clean quit.
# Skips (exit 0) without tmux. Usage: Tests/E2E/terminal_safety_e2e.sh path/to/kvscope (repo root).
set -euo pipefail
if ! command -v tmux >/dev/null; then echo "tmux not installed: skipping the terminal safety test"; exit 0; fi
# shellcheck source=e2e_lib.sh
source "$(dirname "$0")/e2e_lib.sh"
need "$BUNDLE" "the sample bundle"
SESSION=safe
# shellcheck source=tmux_lib.sh
source "$ROOT/Tests/E2E/tmux_lib.sh"

T -f /dev/null new-session -d -s safe -x 100 -y 30 "cd '$WORK' && PS1='READY> ' bash --norc --noprofile -i" \
  </dev/null >/dev/null 2>&1
SERVER_PID="$(T display-message -p -t safe '#{pid}')"
T set-option -t safe status off >/dev/null
wait_for "READY>"
T send-keys -t safe "stty -a > before.txt; echo STTY-SAVED" Enter
wait_for "STTY-SAVED"
[ "$(flag alternate_on)" = 0 ] && [ "$(flag cursor_flag)" = 1 ] || fail "unexpected terminal state before the test"

RUN=0
# start_tui [ENV=VALUE]: opens the explorer on the sample bundle in the background-then-foreground
# pattern that records its pid, and waits for the main screen.
start_tui() {
  RUN=$((RUN + 1))
  T send-keys -t safe "clear; cd '$ROOT'; $* TERM=xterm-256color '$BIN' tui '$BUNDLE' & echo \$! > '$WORK/pid.txt'; fg; echo EXIT$RUN=\$?; cd '$WORK'" Enter
  wait_for "e_w(K)" 60
  [ "$(flag alternate_on)" = 1 ] || fail "the explorer did not enter the alternate screen"
}
# restored NAME STATUS: the explorer ended with STATUS (a regex) and the terminal is as before.
restored() {
  local deadline=$((SECONDS + 15)) code=""
  while [ $SECONDS -lt $deadline ]; do
    code="$(screen | sed -n "s/.*EXIT$RUN=\([0-9]*\).*/\1/p" | tail -1)"
    [ -n "$code" ] && break
    sleep 0.1
  done
  [ -n "$code" ] || fail "$1: the explorer did not end"
  [[ "$code" =~ ^($2)$ ]] || fail "$1: exit status $code, expected $2"
  [ "$(flag alternate_on)" = 0 ] || fail "$1: still in the alternate screen"
  [ "$(flag cursor_flag)" = 1 ] || fail "$1: cursor hidden"
  T send-keys -t safe "stty -a > after$RUN.txt; echo PROMPT-OK-$RUN" Enter
  wait_for "PROMPT-OK-$RUN" 10
  diff "$WORK/before.txt" "$WORK/after$RUN.txt" >/dev/null || { diff "$WORK/before.txt" "$WORK/after$RUN.txt"; fail "$1: stty -a differs"; }
  echo "ok: $1 (exit $code, stty -a unchanged, cursor visible, main screen)"
}

# Termination signals, sent to the explorer's pid.
for sig in INT TERM HUP; do
  start_tui
  kill -"$sig" "$(cat "$WORK/pid.txt")"
  case $sig in INT) want=130 ;; TERM) want=143 ;; HUP) want=129 ;; esac
  restored "SIG$sig" "$want"
done

# A crash (a trap in the explorer): restored, and a non-zero status (killed by SIGILL or SIGTRAP).
start_tui KVSCOPE_DEBUG_CRASH_AFTER_MS=1000 SWIFT_BACKTRACE=enable=no
restored "forced crash" "132|133|134"

# Resize storm: 60 sizes as fast as tmux takes them, then back to 100×30.
start_tui
wait_for "error model ready" 120  # background jobs done: the picture is stable
before_storm="$(screen)"
for i in $(seq 1 60); do
  T resize-window -t safe -x $((20 + (i * 37) % 140)) -y $((5 + (i * 13) % 50))
done
T resize-window -t safe -x 100 -y 30
kill -0 "$(cat "$WORK/pid.txt")" 2>/dev/null || fail "the explorer died in the resize storm"
deadline=$((SECONDS + 10))
until [ "$(screen)" = "$before_storm" ]; do
  [ $SECONDS -lt $deadline ] || { echo "--- before the storm ---"; echo "$before_storm"; fail "the screen after the storm differs from before"; }
  sleep 0.2
done
echo "ok: resize storm (60 resizes, alive, same picture at 100x30)"

# Tiny terminals: 1×1 must not crash; a small one says so; the full size comes back.
T resize-window -t safe -x 1 -y 1
sleep 1
tiny="$(flag window_width)x$(flag window_height)"
kill -0 "$(cat "$WORK/pid.txt")" 2>/dev/null || fail "the explorer died at 1x1"
T resize-window -t safe -x 30 -y 6
wait_for "too small" 10
T resize-window -t safe -x 100 -y 30
wait_for "e_w(K)" 10
echo "ok: $tiny and 30x6 (alive, \"too small\", normal after resizing back)"

# A clean quit restores too.
T send-keys -t safe q
restored "quit" "0"
echo "PASS: terminal safety ($SECONDS s)"
