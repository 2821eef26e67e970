# Shared preamble of the end-to-end scripts (sourced first, with the script's arguments). Gives ROOT
# (the repository), BIN (the kvscope binary: the script's first argument, default the release build
# that `make test` makes, as an absolute path), MODEL, BUNDLE and EVAL (the SmolLM2 model, the sample
# bundle and the evaluation text), and need PATH HINT (exit 1 unless PATH exists).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
E2E_ARG="${1:-$ROOT/.build/release/kvscope}"
BIN="$(cd "$(dirname "$E2E_ARG")" && pwd)/$(basename "$E2E_ARG")"
MODEL="$ROOT/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLE="$ROOT/Samples/smollm2"
EVAL="$ROOT/Samples/eval.txt"
need() { [ -e "$1" ] || { echo "missing $1 ($2)"; exit 1; }; }
[ -x "$BIN" ] || { echo "missing $BIN (swift build first)"; exit 1; }
