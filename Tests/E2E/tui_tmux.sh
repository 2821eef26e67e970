#!/usr/bin/env bash
# End-to-end test of the explorer in a real terminal (tmux). Skips (exit 0 with a note) when tmux
# is not installed. Opens the sample bundle (its source model present) and checks what a user sees
# against the command line's figures for the same settings:
#   - the starting ranks against `kvscope spectra --json`, rank/bits/window changes against the
#     DESIGN.md §4 memory formula;
#   - Weights mode at 4 bits, group 128 against `kvscope quantize --json`;
#   - `p` (with progress, Esc cancels) against `kvscope eval --config` on the exported config;
#   - `b 20%` allocates within the budget;
#   - the compact layout, "terminal too small" and back on resize;
#   - export (never overwriting silently), quit with the unexported-changes question, `stty -a`
#     unchanged afterwards; colors degrade for NO_COLOR, 8 and 16 colors.
# Signals and crashes are Tests/E2E/terminal_safety_e2e.sh's.
# Usage: Tests/E2E/tui_tmux.sh [path/to/kvscope]   (run from the repository root)
set -euo pipefail
if ! command -v tmux >/dev/null; then echo "tmux not installed: skipping the TUI end-to-end test"; exit 0; fi
# shellcheck source=e2e_lib.sh
source "$(dirname "$0")/e2e_lib.sh"
need "$MODEL" "make models"
SESSION=e2e
# shellcheck source=tmux_lib.sh
source "$ROOT/Tests/E2E/tmux_lib.sh"
TUI="'$BIN' tui '$BUNDLE' --text '$EVAL'"

# CLI reference figures, computed while the explorer starts.
"$BIN" quantize "$MODEL" --bits 4 --group 128 --json > "$WORK/quantize.json" 2>/dev/null &
QUANT_PID=$!
"$BIN" spectra "$BUNDLE" --json > "$WORK/spectra.json"

# A shell in a 120x40 window; record its terminal modes first.
# The server must not hold our stdout open (a caller reading it to EOF would wait forever).
T -f /dev/null new-session -d -s e2e -x 120 -y 40 "cd '$WORK' && PS1='READY> ' bash --norc --noprofile -i" \
  </dev/null >/dev/null 2>&1
SERVER_PID="$(T display-message -p -t e2e '#{pid}')"
T set-option -t e2e status off >/dev/null
wait_for "READY>"
T send-keys -t e2e "stty -a > before.txt; echo STTY-SAVED" Enter
wait_for "STTY-SAVED"

T send-keys -t e2e "clear; TERM=xterm-256color $TUI; echo EXIT=\$?" Enter
wait_for "e_w(K)" 60
wait_for "error model ready" 60

# Layer 0 starts at the CLI's 95%-energy ranks (weights source).
read -r K0 V0 <<<"$(python3 -c "import json; l=json.load(open('$WORK/spectra.json'))['layers'][0]; print(l['k']['energy_rank']['0.95'], l['v']['energy_rank']['0.95'])")"
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
L, w, dkv, g = 4096, 40, 192, 32   # tune's defaults: context 4096, groups of 32 features
base = comp = 0.0
for i, l in enumerate(d['layers']):
    base += 2 * L * dkv * 2
    for kind in ('k', 'v'):
        r, b = int(l[kind]['energy_rank']['0.95']), 16
        if i == 0 and kind == 'k': r, b = r0, 6
        meta = 0 if b == 16 else -(-r // g) * 4
        comp += min(L, w) * dkv * 2 + max(L - w, 0) * (r * b / 8 + meta)
print("%.2f" % (comp / 1048576), "%.1f%%" % ((1 - comp / base) * 100))
PY
)"
wait_for "total $TOTAL MiB"
wait_for "effective $EFF"

# Weights mode: 4 bits for every matrix (16 -> 8 -> 6 -> 5 -> 4, a) equals `kvscope quantize --bits 4 --group 128`.
T send-keys -t e2e m
wait_for "Weight quantization (LLM-MQ)"
T send-keys -t e2e - - - - a
wait "$QUANT_PID" || fail "kvscope quantize failed"
read -r QMIB QBPW Q0 <<<"$(python3 -c "
import json; d=json.load(open('$WORK/quantize.json'))
print('%.2f' % (d['total_bytes']/1048576), '%.3f' % d['bits_per_weight'], '%.4f' % d['tensors'][0]['rel_error'])")"
wait_for "all 210 matrices: $QMIB MiB of"
wait_for "$QBPW bits/weight"
screen | grep -qE "^│ blk\.0\.attn_q +4 +$Q0 " || fail "blk.0.attn_q does not show quantize's rel_error $Q0"
python3 - "$WORK/quantize.json" > "$WORK/roles.txt" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))['roles']:
    print("%s %d %.4f %.3f" % (r['role'], r['tensors'], r['rel_error'], r['bytes'] / 1048576))
PY
while read -r ROLE N ERR MIB; do
  screen | grep -qE "│ $ROLE +$N +4 +$ERR +$MIB " || fail "role $ROLE does not show quantize's $ERR, $MIB MiB"
done < "$WORK/roles.txt"

# Eval mode: p runs in the background with a progress bar; Esc cancels; a second p completes.
T send-keys -t e2e m
wait_for "perplexity: press p"
T send-keys -t e2e p
wait_for "(Esc cancels)" 10
T send-keys -t e2e Escape
wait_for "cancelled" 60
T send-keys -t e2e p
wait_for "fp16 cache" 120
read -r PPL BASE <<<"$(screen | sed -nE 's/.*perplexity ([0-9.]+) +\(fp16 cache ([0-9.]+),.*/\1 \2/p' | head -1)"
[ -n "$PPL" ] || fail "no perplexity on screen"

# Export with the default name, then `kvscope eval --config` on it gives the same perplexity.
T send-keys -t e2e e
wait_for "Export config as"
T send-keys -t e2e Enter
wait_for "exported smollm2.kvscope.json"
CFG="$WORK/smollm2.kvscope.json"
[ -f "$CFG" ] || fail "config file not written"
python3 - "$CFG" "$R" <<'PY' || fail "exported config does not hold the settings"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["format"] == "kvscope-config" and c["version"] == 1
l0 = c["kv_cache"]["layers"][0]
assert l0["k"] == {"rank": int(sys.argv[2]), "bits": 6}, l0
assert c["kv_cache"]["window"] == 40
assert all(w["bits"] == 4 for w in c["weights"]["layers"])
PY
# The explorer's export is a schema-v1 config: eval --config takes it as written.
(cd "$ROOT" && "$BIN" eval "$BUNDLE" --text "$EVAL" --config "$CFG" --json > "$WORK/eval.json" 2>"$WORK/eval.err") \
  || { cat "$WORK/eval.err"; fail "kvscope eval --config failed"; }
read -r EPPL EBASE <<<"$(python3 -c "import json; d=json.load(open('$WORK/eval.json')); print('%.3f' % d['perplexity'], '%.3f' % d['baseline_perplexity'])")"
[ "$PPL" = "$EPPL" ] || fail "perplexity $PPL on screen, kvscope eval --config says $EPPL"
[ "$BASE" = "$EBASE" ] || fail "baseline $BASE on screen, kvscope eval says $EBASE"

# b: 20% of the fp16 cache.
T send-keys -t e2e m b
wait_for "KV budget (% of fp16 bytes at L 4096, group 32, window 40)"
T send-keys -t e2e BSpace BSpace 2 0 Enter
wait_for "allocated ranks and bits under 20.0% of fp16" 60
USED="$(screen | sed -nE 's/.*of fp16 \(([0-9.]+)% used.*/\1/p' | head -1)"
python3 -c "import sys; sys.exit(0 if 15 < float('$USED') <= 20 else 1)" || fail "allocation uses $USED% of fp16"

# A resize redraws (compact layout), too small, and back.
T resize-window -t e2e -x 80 -y 24
wait_for "e_w"
screen | head -1 | grep -qE "^ kvscope .* L 4096 · g 32 · N 1 · KV [0-9.]+ MiB of 90.00 MiB ?$" || fail "compact header"
T resize-window -t e2e -x 60 -y 20
wait_for "terminal too small"
T resize-window -t e2e -x 120 -y 40
wait_for "e_w(K)"

# A second export to the same name asks before overwriting.
T send-keys -t e2e e
wait_for "Export config as"
T send-keys -t e2e Enter
wait_for "exists. Overwrite? (y/n)"
T send-keys -t e2e n
wait_for "not exported"

# Unexported changes ask before quitting; n stays, y quits with status 0.
T send-keys -t e2e q
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

# Colors: NO_COLOR has none (the header and the selection are reverse video), TERM=xterm uses the 8
# ANSI colors, a 16-color terminal the 16 (some bright). colors_for ENV MAX: opens the explorer,
# captures the screen with its escapes, quits, and checks the palette indices used.
colors_for() {
  T send-keys -t e2e "clear; $1 $TUI; echo EXIT=\$?" Enter
  wait_for "e_w(K)" 30
  T capture-pane -e -p -t e2e > "$WORK/colors.txt"
  T send-keys -t e2e q
  wait_for "EXIT=0"
  python3 - "$WORK/colors.txt" "$2" <<'PY' || fail "$1: colors"
import re, sys
text, limit = open(sys.argv[1], encoding="utf-8", errors="replace").read(), int(sys.argv[2])
colors, reverse = set(), False
for params in re.findall(r"\x1b\[([0-9;]*)m", text):
    p = [int(x) for x in params.split(";") if x]
    i = 0
    while i < len(p):
        if p[i] in (38, 48) and i + 2 < len(p) and p[i + 1] == 5: colors.add(p[i + 2]); i += 3; continue
        if 30 <= p[i] <= 37 or 40 <= p[i] <= 47: colors.add(p[i] % 10)
        if 90 <= p[i] <= 97 or 100 <= p[i] <= 107: colors.add(p[i] % 10 + 8)
        if p[i] == 7: reverse = True
        i += 1
if limit == 0:
    assert not colors and reverse, (sorted(colors), reverse)
else:
    assert colors and max(colors) < limit, sorted(colors)
    if limit == 16: assert max(colors) >= 8, sorted(colors)
PY
}
colors_for "NO_COLOR=1 TERM=xterm-256color" 0
colors_for "TERM=xterm" 8
# xterm-16color's terminfo comes with ncurses-term; without it rxvt-unicode (88 colors) gets the 16-color mapping.
T16=xterm-16color; infocmp "$T16" >/dev/null 2>&1 || T16=rxvt-unicode
colors_for "TERM=$T16" 16
T send-keys -t e2e "stty -a > after2.txt; echo STTY-DONE2" Enter
wait_for "STTY-DONE2"
diff "$WORK/before.txt" "$WORK/after2.txt" >/dev/null || fail "terminal modes differ after the color runs"
echo "PASS: TUI end-to-end ($SECONDS s)"
