# Shared set-up of the tmux end-to-end scripts (sourced, not run). Set SESSION (the tmux session
# name) first. Gives: WORK (a temporary folder, removed on exit), T (tmux on a private server),
# fail, screen, wait_for TEXT [seconds], flag NAME (a tmux format flag of the pane), and SERVER_PID,
# which the script sets once the server runs so cleanup can end it for sure.
SOCK="kvscope-$SESSION-$$"
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
screen() { T capture-pane -p -t "$SESSION"; }
fail() { echo "FAIL: $*"; echo "--- screen ---"; screen || true; exit 1; }
# wait_for TEXT [seconds]: poll the screen until TEXT appears.
wait_for() {
  local deadline=$((SECONDS + ${2:-20}))
  while [ $SECONDS -lt $deadline ]; do
    screen | grep -qF -- "$1" && return 0
    sleep 0.1
  done
  fail "timed out waiting for '$1'"
}
flag() { T display-message -p -t "$SESSION" "#{$1}"; }
