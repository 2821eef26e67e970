#!/usr/bin/env python3
"""Hugging Face checkpoint folders made from the GGUF models, for the Swift safetensors/HF loader tests.

For each model (smollm2, qwen2, gemma3) this writes, under <models-dir>/hf/:
  <name>-bf16/  config.json, tokenizer.json (+ tokenizer_config.json), bfloat16 weights in >= 2
                shards (model-0000i-of-0000n.safetensors + model.safetensors.index.json)
  <name>-f32/   config.json, tokenizer.json (+ tokenizer_config.json), float32 weights in one
                model.safetensors
These are generated (by `make models`), never committed: models/ is git-ignored.

How: transformers loads the GGUF (dequantized to float32; it un-permutes the llama Q/K rows and
subtracts Gemma's +1 from the norm weights), but refuses to save_pretrained a GGUF-loaded model,
so the weights are copied into AutoModelForCausalLM.from_config(config) with load_state_dict and
that model is saved. The tokenizer.json is built from the GGUF metadata by gguf_tokenizer_json.py
(the one transformers converts from a GGUF is lossy: a BOS SmolLM2's GGUF does not add, a Unigram
model over Gemma 3's BPE scores; families_reference.py records where), so a folder tokenizes like
its GGUF; transformers' tokenizer_config.json is kept beside it.

Every folder is reloaded once before it is published: its tensors must equal the source tensors
(exactly for float32, equal to the float32 tensors rounded to bfloat16 for bf16), the embedding
must still be tied to the head where the config says so, and its logits on a few tokens must
equal those of the source model in the same dtype. Any mismatch raises.

Idempotent: a folder holding the stamp file `.complete` is skipped. Each folder is written to a
temporary sibling and renamed into place after its check. One progress line per model on stderr.

Usage (from the repository root):
    .venv/bin/python Tests/Reference/hf_fixtures.py [--models-dir models] [smollm2 qwen2 gemma3]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_tokenizer_json  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

# name -> (folder under models-dir, GGUF file name)
MODELS = {
    "smollm2": ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "qwen2": ("qwen2", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    "gemma3": ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
}
STAMP = ".complete"
TOKENIZER_STAMP = ".tokenizer-from-gguf-v1"  # tokenizer.json written by gguf_tokenizer_json.py
CHECK_IDS = [[2, 100, 1000, 5000, 10000, 20, 300, 4000]]  # a few in-vocabulary ids for the logits check


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def load_gguf(models_dir, name):
    sub, file = MODELS[name]
    d = os.path.join(models_dir, sub)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=file, dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=file)
    return model, tok


def rebuild(src, dtype):
    """A plain (not GGUF-flagged) model with src's config and weights, in dtype."""
    config = src.config
    # built directly in dtype (load_state_dict rounds the float32 tensors into it): a model built
    # in float32 and cast with .to(dtype) would also cast the RoPE inv_freq buffers, which
    # from_pretrained keeps in float32, and its logits would not be the reloaded folder's
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
    # lm_head.weight may be absent from a tied state dict; anything else missing is an error
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.config.dtype = dtype
    model.eval()
    return model


def shard_size(model, n=3):
    total = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    return max(1, total // n)


def logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.float()


def check(folder, src32, ref, dtype, tied):
    """Reload `folder` and compare with `ref` (the in-memory model in dtype) and src32."""
    back = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    back.eval()
    sd_back, sd_src = back.state_dict(), src32.state_dict()
    for k, v in sd_src.items():
        if k not in sd_back:
            raise RuntimeError(f"{folder}: tensor {k} missing after reload")
        want = v.to(dtype)
        if not torch.equal(sd_back[k], want):
            err = (sd_back[k].float() - want.float()).abs().max().item()
            raise RuntimeError(f"{folder}: tensor {k} differs after reload (max |diff| {err})")
    if tied:
        if not torch.equal(back.lm_head.weight, back.model.embed_tokens.weight):
            raise RuntimeError(f"{folder}: lm_head is not tied to embed_tokens after reload")
    elif torch.equal(back.lm_head.weight, back.model.embed_tokens.weight):
        raise RuntimeError(f"{folder}: untied lm_head came back equal to embed_tokens")
    a, b = logits(ref, CHECK_IDS), logits(back, CHECK_IDS)
    err = (a - b).abs().max().item()
    if err != 0.0:
        raise RuntimeError(f"{folder}: reloaded logits differ from the source model by {err}")
    if dtype == torch.bfloat16:
        # the bf16 model must still be the same function up to bf16 rounding
        c = logits(src32, CHECK_IDS)
        rel = ((b - c).norm() / c.norm()).item()
        if rel > 0.05:
            raise RuntimeError(f"{folder}: bf16 logits are {rel:.3g} (relative) away from float32")
        return err, rel
    return err, 0.0


def write_tokenizer(models_dir, name, folder):
    """tokenizer.json from the GGUF (replacing transformers' conversion), then its stamp."""
    sub, file = MODELS[name]
    gguf_tokenizer_json.build(os.path.join(models_dir, sub, file)).save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, TOKENIZER_STAMP), "w") as f:
        f.write("tokenizer.json from gguf_tokenizer_json.py\n")


def write_folder(models_dir, name, kind, src32, tok):
    final = os.path.join(models_dir, "hf", f"{name}-{kind}")
    if os.path.exists(os.path.join(final, STAMP)):
        return final, "skipped (complete)"
    if os.path.exists(final):
        shutil.rmtree(final)  # an unstamped folder is a leftover: redo it
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}-{kind}.", dir=os.path.dirname(final))
    try:
        dtype = torch.bfloat16 if kind == "bf16" else torch.float32
        model = rebuild(src32, dtype)
        tied = bool(model.config.tie_word_embeddings)
        if kind == "bf16":
            model.save_pretrained(tmp, max_shard_size=shard_size(model))
            shards = [f for f in os.listdir(tmp) if f.endswith(".safetensors")]
            if len(shards) < 2 or not os.path.exists(os.path.join(tmp, "model.safetensors.index.json")):
                raise RuntimeError(f"{name}-bf16: expected >= 2 shards and an index, got {sorted(os.listdir(tmp))}")
        else:
            model.save_pretrained(tmp, max_shard_size="1000GB")
            if not os.path.exists(os.path.join(tmp, "model.safetensors")):
                raise RuntimeError(f"{name}-f32: no single model.safetensors in {sorted(os.listdir(tmp))}")
        tok.save_pretrained(tmp)
        write_tokenizer(models_dir, name, tmp)
        err, rel = check(tmp, src32, model, dtype, tied)
        with open(os.path.join(tmp, STAMP), "w") as f:
            f.write(f"{MODELS[name][1]}\n")
        os.rename(tmp, final)
        n = len([f for f in os.listdir(final) if f.endswith(".safetensors")])
        return final, f"{n} shard(s), tied={tied}, reload exact" + (f", bf16 vs f32 logits rel {rel:.2e}" if rel else "")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", default="models")
    ap.add_argument("names", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    for name in args.names:
        if name not in MODELS:
            sys.exit(f"hf_fixtures: unknown model {name!r} (known: {', '.join(MODELS)})")
    torch.manual_seed(0)
    for name in args.names:
        t0 = time.time()
        finals = [os.path.join(args.models_dir, "hf", f"{name}-{k}") for k in ("bf16", "f32")]
        for f in finals:  # complete folders from before the GGUF-built tokenizer.json: replace it only
            if os.path.exists(os.path.join(f, STAMP)) and not os.path.exists(os.path.join(f, TOKENIZER_STAMP)):
                write_tokenizer(args.models_dir, name, f)
                log(f"hf_fixtures: {f}: tokenizer.json rebuilt from the GGUF")
        if all(os.path.exists(os.path.join(f, STAMP)) for f in finals):
            log(f"hf_fixtures: {name}: up to date ({', '.join(finals)})")
            continue
        src32, tok = load_gguf(args.models_dir, name)
        notes = []
        for kind in ("bf16", "f32"):
            final, note = write_folder(args.models_dir, name, kind, src32, tok)
            notes.append(f"{os.path.basename(final)}: {note}")
        del src32
        log(f"hf_fixtures: {name}: {'; '.join(notes)} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
