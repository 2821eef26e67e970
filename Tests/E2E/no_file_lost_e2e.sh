#!/usr/bin/env bash
# No file lost, end to end: `kvscope export` (factors safetensors and Palu ranks) and `kvscope tune --out`
# into a full 64 KiB tmpfs, and export into a read-only one, keep the existing file byte for byte, prints one `kvscope: error:` line
# and exits non-zero, leaving no temporary file; an export interrupted by SIGINT or SIGTERM leaves
# the old file or the whole new one and no temporary file; after SIGKILL (which cannot be caught) at
# most a temporary file named .NAME.tmp-XXXXXX may remain.
# Needs root for mount (skips with exit 0 otherwise). Usage: Tests/E2E/no_file_lost_e2e.sh path/to/kvscope
set -euo pipefail
# shellcheck source=e2e_lib.sh
source "$(dirname "$0")/e2e_lib.sh"
need "$MODEL" "make models"
WORK="$(mktemp -d)"
TINY="$WORK/tiny"
mkdir -p "$TINY"
if ! mount -t tmpfs -o size=64k tmpfs "$TINY" 2>/dev/null; then
  echo "cannot mount a tmpfs (not root?): skipping the no-file-lost test"; rm -rf "$WORK"; exit 0
fi
cleanup() { umount "$TINY" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# A weights-basis config for SmolLM2 (data-free: no calibration text), memory figures per DESIGN.md §4.
python3 - "$MODEL" "$WORK/cfg.json" <<'PY'
import hashlib, json, sys
model, out = sys.argv[1], sys.argv[2]
sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
n, d, dkv, w, g, L = 30, 576, 192, 32, 32, 4096
layers = [{"layer": i, "k": {"rank": 32, "bits": 4}, "v": {"rank": 48, "bits": 4}} for i in range(n)]
def tok(r, b): return r * b / 8 + (0 if b == 16 else -(-r // g) * 4)
base = n * 2 * L * dkv * 2
comp = sum(min(L, w) * dkv * 2 + max(L - w, 0) * tok(l[x]["rank"], l[x]["bits"]) for l in layers for x in "kv")
bits = sum(l[x]["rank"] * l[x]["bits"] for l in layers for x in "kv")
json.dump({"format": "kvscope-config", "version": 1,
           "model": {"path": model, "architecture": "llama", "n_layers": n, "hidden_size": d, "d_kv": dkv, "sha256": sha},
           "kv_cache": {"basis": "weights", "window": w, "group_size": g, "context_length": L, "layers": layers,
                        "memory": {"baseline_bytes": float(base), "compressed_bytes": comp, "ratio": 1 - comp / base,
                                   "nominal_ratio": 1 - bits / (n * 2 * dkv * 16)}},
           "metrics": {}}, open(out, "w"), indent=1)
PY
OLD="the old file, which must survive"
# check NAME FILE...: the command failed with one error line (after any plain progress lines such as
# `tune: weight error tables 100% (210/210 matrices)`, which stderr gets when it is not a terminal),
# FILE holds OLD, and nothing else is in $TINY.
check_refused() {
  local name=$1 rc=$2 file=$3
  [ "$rc" != 0 ] || fail "$name: exit status 0"
  grep -v -E '^[a-z][a-z ]*: .* [0-9]+%( \(.*\))?$' "$WORK/err.txt" > "$WORK/errors.txt" || true
  [ "$(wc -l < "$WORK/errors.txt")" = 1 ] && grep -q "^kvscope: error: " "$WORK/errors.txt" \
    && tail -1 "$WORK/err.txt" | grep -q "^kvscope: error: " || { cat "$WORK/err.txt"; fail "$name: not one error line"; }
  [ "$(cat "$file")" = "$OLD" ] || fail "$name: the old file changed"
  strays="$(ls -A "$TINY" | grep -v -x -e filler -e factors.safetensors -e head_wise_ranks.json -e tuned.json || true)"
  [ -z "$strays" ] || fail "$name: left $strays"
  echo "ok: $name (exit $rc: $(cat "$WORK/errors.txt"))"
}
fill() { dd if=/dev/zero of="$TINY/filler" bs=4k 2>/dev/null || true; }

# 1. A full file system.
echo "$OLD" > "$TINY/factors.safetensors"; echo "$OLD" > "$TINY/head_wise_ranks.json"; echo "$OLD" > "$TINY/tuned.json"; fill
set +e
"$BIN" export "$WORK/cfg.json" --factors "$TINY/factors.safetensors" --force >/dev/null 2>"$WORK/err.txt"; rc=$?
set -e
check_refused "export --factors into a full file system" $rc "$TINY/factors.safetensors"
set +e
"$BIN" export "$WORK/cfg.json" --palu "$TINY" --force >/dev/null 2>"$WORK/err.txt"; rc=$?
set -e
check_refused "export --palu into a full file system" $rc "$TINY/head_wise_ranks.json"
set +e
"$BIN" tune "$MODEL" --weight-bits 3.0 --out "$TINY/tuned.json" --force >/dev/null 2>"$WORK/err.txt"; rc=$?
set -e
check_refused "tune --out into a full file system" $rc "$TINY/tuned.json"

# 2. A read-only file system (chmod does not stop root; a read-only mount does).
rm -f "$TINY/filler"
mount -o remount,ro "$TINY"
set +e
"$BIN" export "$WORK/cfg.json" --factors "$TINY/factors.safetensors" --force >/dev/null 2>"$WORK/err.txt"; rc=$?
set -e
check_refused "export --factors into a read-only file system" $rc "$TINY/factors.safetensors"
mount -o remount,rw "$TINY"

# 3. Interrupted exports: the destination is the old file or the whole new one.
OUT="$WORK/out"; mkdir -p "$OUT"
"$BIN" export "$WORK/cfg.json" --factors "$OUT/new.safetensors" >/dev/null 2>&1 || fail "a plain export failed"
NEW_SHA="$(sha256sum < "$OUT/new.safetensors")"
killed=0
for sig in INT TERM KILL; do
  for delay in 0.2 1 3; do
    echo "$OLD" > "$OUT/f.safetensors"
    "$BIN" export "$WORK/cfg.json" --factors "$OUT/f.safetensors" --force >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -"$sig" "$pid" 2>/dev/null && killed=$((killed + 1))
    wait "$pid" 2>/dev/null || true
    sha="$(sha256sum < "$OUT/f.safetensors")"
    if [ "$(head -c 100 "$OUT/f.safetensors" 2>/dev/null | tr -d '\0')" != "$OLD" ] && [ "$sha" != "$NEW_SHA" ]; then
      fail "SIG$sig after ${delay}s: a partial file"
    fi
    others="$(ls -A "$OUT" | grep -v -x -e new.safetensors -e f.safetensors || true)"
    # Only SIGKILL may leave the writer's temporary file.
    [ "$sig" = KILL ] && others="$(echo "$others" | grep -v -E '^\.f\.safetensors\.tmp-[A-Za-z0-9]{6}$' || true)"
    [ -z "$others" ] || fail "SIG$sig after ${delay}s: unexpected files $others"
    rm -f "$OUT"/.f.safetensors.tmp-*
  done
done
echo "ok: interrupted exports ($killed killed mid-run of 9): old or new file; no stray file after SIGINT/SIGTERM"
# 4. SIGINT exactly while the temporary file exists (polled): the handler removes it.
python3 - "$BIN" "$WORK/cfg.json" "$OUT" "$OLD" "$NEW_SHA" <<'PY' || fail "SIGINT during the write"
import glob, hashlib, os, signal, subprocess, sys, time
binary, cfg, out, old, new_sha = sys.argv[1:6]
new_sha = new_sha.split()[0]  # sha256sum prints "HASH  -"
dest = os.path.join(out, "g.safetensors")
caught = 0
for _ in range(3):
    with open(dest, "w") as f:
        f.write(old + "\n")
    p = subprocess.Popen([binary, "export", cfg, "--factors", dest, "--force"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while p.poll() is None:
        if glob.glob(os.path.join(out, ".g.safetensors.tmp-*")):
            p.send_signal(signal.SIGINT)
            caught += 1
            break
        time.sleep(0.0005)
    p.wait()
    strays = glob.glob(os.path.join(out, ".g.safetensors.tmp-*"))
    if strays:
        sys.exit(f"stray temporary file after SIGINT: {strays}")
    data = open(dest, "rb").read()
    # A signal that lands after the rename legitimately leaves the complete new file.
    if not data.startswith(old.encode()) and hashlib.sha256(data).hexdigest() != new_sha:
        sys.exit("an interrupted export left a partial file")
print(f"ok: SIGINT while the temporary file existed ({caught} of 3 caught mid-write): no stray file, old file kept")
PY
echo "PASS: no file lost ($SECONDS s)"
