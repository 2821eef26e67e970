#!/usr/bin/env python3
"""Golden numbers for three model families (SmolLM2 = llama, Qwen2.5-Coder = qwen2, Gemma 3 = gemma3),
for the Swift tests of the family-generic forward pass, tokenizers and KV-cache policies.

Writes Tests/Golden/inference/families/<name>.json for smollm2, qwen2, gemma3, each with:

  tokenizer   For ~14 stress texts and for families_text.txt, Samples/calibration.txt and
              Samples/eval.txt, the ids of
                - `transformers`: AutoTokenizer.from_pretrained(dir, gguf_file=...), i.e. the
                  tokenizer transformers converts from the GGUF metadata, add_special_tokens=True
                  (`ids`) and False (`add_special_tokens_false`; for the three long texts left
                  out when it equals another array, `add_special_tokens_false_same_as` naming it);
                - `tokenizers`: tokenizers.Tokenizer.from_file on the tokenizer.json that
                  hf_fixtures.py saves from that same tokenizer (the fixture's file if it exists,
                  else the same save_pretrained into a temporary folder), add_special_tokens=True;
                  stored only where it differs from `ids` (`tokenizers_agrees` says which);
                - `gguf`: what the GGUF's own tokenizer gives, built independently of transformers:
                  SmolLM2 and Qwen2: a `tokenizers` byte-level BPE over the GGUF vocab and merges
                  with llama.cpp's pre-tokenizer ("smollm": tokenizer_golden.py; "qwen2": its
                  regex, no normalizer); Gemma 3: llama.cpp's SPM algorithm (user-defined tokens
                  split out first, then highest-score bigram merges, byte fallback), written here,
                  and checked against the `sentencepiece` library running a BPE ModelProto built
                  from the GGUF pieces. BOS is prepended exactly when tokenizer.ggml.add_bos_token.
              The `gguf` ids of the long texts (tokenizer.files[path].gguf) are the sequences every
              number below is computed on. transformers' GGUF tokenizers disagree with them for
              SmolLM2 (it prepends <|im_start|>, id 1, as a BOS the GGUF does not add), Qwen2 (an
              NFC normalizer llama.cpp does not have: decomposed accents) and Gemma 3 (a Unigram
              model over BPE merge scores, and no BOS); `tokenizer.findings` lists the differences.
  baseline    Mean NLL (natural log, mean over t = 0..T-2 of -log p(x_{t+1} | x_<=t), one sequence)
              and perplexity of families_text.txt under transformers in float32, the GGUF loaded
              with from_pretrained(dir, gguf_file=..., dtype=float32); also on transformers' own
              add_special_tokens=True ids where those differ; and the float64 numpy value.
  spectra     Per layer, the singular values (descending, all d_kv of them; 5 significant digits,
              none finer than 1e-6·σ₁)
              of the [T, d_kv] pre-RoPE K and V of families_text.txt from transformers' own
              activations (forward hooks: k_proj / v_proj outputs, k_proj bias included for Qwen2,
              k_norm output for Gemma 3; HF channel order), uncentered and centered (per-channel
              mean over tokens removed), with r90/r99 (the fewest values holding 90% / 99% of the
              squared sum).
  compressed  Mean NLL / ΔNLL / perplexity of families_text.txt under three KV policies in every
              layer, from this file's float64 numpy forward pass (below), ΔNLL against its own
              float64 baseline.

The float64 forward pass reads the weights from the GGUF itself with gguf-py (GGUFReader +
gguf.quants.dequantize; SmolLM2's Q/K rows un-permuted from llama.cpp's adjacent-pair layout to the
HF rotate-half layout; Qwen2 and Gemma 3 are stored unpermuted) and never from transformers, so its
agreement with the transformers baseline (required: 1e-4 relative in mean NLL) checks transformers'
GGUF loader too; the script also compares every weight with transformers' state dict (exact: the
same dequantization) and checks that transformers subtracted the +1 that Gemma's GGUF norm weights
carry. Per family:
  llama   x = E[tok]; per layer x += Wo·attn(rmsnorm(x)); x += Wd·(silu(Wg h) ⊙ Wu h), h = rmsnorm(x);
          rotate-half RoPE; head = E (tied) or output.weight.
  qwen2   as llama, with q/k/v biases.
  gemma3  x = E[tok]·sqrt(d); RMSNorm x·rsqrt(mean x² + eps)·w with the GGUF weights (which include
          the +1); q_norm/k_norm per head before RoPE; scores scaled by query_pre_attn_scalar^-1/2
          = 256^-1/2; post-attention and post-feed-forward norms before each residual add;
          GeGLU with tanh-approximated gelu; layer i global when (i+1) % 6 == 0, else sliding
          (key s visible from t only when t - s < 512) with RoPE base 10000 (1e6 on global
          layers); tied head.

KV policies (kvscope's definitions): per layer the policy sees the pre-RoPE K [T, d_kv] (as in
spectra) and V. Low rank r: c = x U_r, x̂ = c U_rᵀ, U_r the top-r eigenvectors (eigh of the
uncentered KᵀK, resp. VᵀV, descending) of that layer's activations of the exact float64 model on
Samples/calibration.txt (one sequence, model_ids). Quantizer bits B, group G: per token, groups
of G consecutive values of the stored vector (features if low rank, else the d_kv vector):
lo = min, hi = max, scale = (hi - lo)/(2^B - 1), q = round-half-even((x - lo)/scale) clipped to
[0, 2^B - 1], x̂ = q·scale + lo (x̂ = lo when scale = 0). Window W: the query at t reads exact K/V
at s > t - W and K̂/V̂ at s <= t - W; K̂ gets RoPE at its own position s. Causal mask, plus the
sliding-window mask on Gemma 3's sliding layers.

Run from the repository root (about 10 minutes on 2 cores):
    .venv/bin/python Tests/Reference/families_reference.py [smollm2 qwen2 gemma3]
"""
import hashlib
import json
import os
import struct
import sys
import tempfile
import time
import heapq

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import tokenizers  # noqa: E402
from gguf import GGUFReader  # noqa: E402
from gguf.quants import dequantize  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_golden import build_tokenizer as build_smollm_tokenizer  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

OUT_DIR = "Tests/Golden/inference/families"
TEXT = "Tests/Golden/inference/families_text.txt"
CALIB = "Samples/calibration.txt"
EVAL = "Samples/eval.txt"
MODELS = {
    "smollm2": ("models/smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "qwen2": ("models/qwen2", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    "gemma3": ("models/gemma3", "gemma-3-270m-q4_k_m.gguf"),
}
CASES = [
    {"name": "k_rank32_window32", "k_rank": 32, "k_bits": 16, "v_rank": None, "v_bits": 16, "group": None, "window": 32},
    {"name": "bits4_group64_window32", "k_rank": None, "k_bits": 4, "v_rank": None, "v_bits": 4, "group": 64, "window": 32},
    {"name": "rank32_window32", "k_rank": 32, "k_bits": 16, "v_rank": 32, "v_bits": 16, "group": None, "window": 32},
]
TOKENIZER_TEXTS = [
    "Héllo wörld — naïve café in São Paulo, Zürich and Kraków.",
    "日本語のテキスト、中文字符，还有한국어。",
    "Ελληνικά: αβγ, δέλτα και Ωμέγα.",
    "1234567 and 3.14, 2026-01-31, 1e-9, 0x1F, 1,000,000.",
    "def f(x):\n\tif x:\n\t\treturn [i * 2 for i in range(10)]\n    else:\n        return None\n",
    "a  b   c\n\n\n  d",
    "I \u2764\ufe0f \U0001F980 and \U0001F469\u200d\U0001F4BB, flags \U0001F1EB\U0001F1F7\U0001F1EF\U0001F1F5, \U0001F44D\U0001F3FD",
    "don't, I'LL, we've, she'd, they're, it's, O'Neil's",
    "   leading spaces and trailing   ",
    b"abc\xff\xfedef".decode("utf-8", "replace"),
    "",
    "cafe\u0301 (decomposed) vs caf\u00e9 (composed)",
    "<b>bold</b> & <br/> mail@example.org https://example.com/a?b=c#d",
    "line one\r\nline two\r\n",
]
# llama.cpp's pre-tokenizer regex for tokenizer.ggml.pre = "qwen2" (LLAMA_VOCAB_PRE_TYPE_QWEN2)
QWEN2_REGEX = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
f64 = np.float64


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def read_text(path):
    return open(path, "rb").read().decode("utf-8")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- GGUF tokenizers (independent of transformers)

def gguf_field(reader, key, default=None):
    return reader.fields[key].contents() if key in reader.fields else default


class LlamaCppSPM:
    """llama.cpp's SPM tokenizer for plain text (parse_special = false): user-defined tokens are cut
    out of the raw text first (longest token text first, each at every occurrence), then each
    remaining fragment has ' ' replaced by U+2581 and is merged bigram by bigram, highest token
    score first (ties: leftmost), symbols starting as UTF-8 characters; a final symbol that is not
    a token is re-split along its merges, and characters that are no token become <0xXX> bytes."""

    def __init__(self, tokens, scores, types, add_bos, bos_id, add_space_prefix):
        self.tokens, self.scores = tokens, scores
        self.id = {}
        for i, t in enumerate(tokens):
            self.id.setdefault(t, i)
        self.add_bos, self.bos, self.add_space_prefix = add_bos, bos_id, add_space_prefix
        self.user = sorted((i for i, ty in enumerate(types) if ty == 4), key=lambda i: (-len(tokens[i]), i))

    def partition(self, text):
        frags = [text]
        for tid in self.user:
            s, out = self.tokens[tid], []
            for frag in frags:
                if not isinstance(frag, str) or s not in frag:
                    out.append(frag)
                    continue
                start = 0
                while (j := frag.find(s, start)) >= 0:
                    if j > start:
                        out.append(frag[start:j])
                    out.append(tid)
                    start = j + len(s)
                if start < len(frag):
                    out.append(frag[start:])
            frags = out
        return frags

    def merge(self, text):
        syms = list(text)
        if not syms:
            return []
        n = len(syms)
        prev, nxt = list(range(-1, n - 1)), list(range(1, n + 1))
        nxt[-1] = -1
        heap, rev = [], {}

        def add(left, right):
            if left >= 0 and right >= 0 and (tid := self.id.get(syms[left] + syms[right])) is not None:
                heapq.heappush(heap, (-self.scores[tid], left, syms[left] + syms[right]))

        for i in range(n - 1):
            add(i, i + 1)
        while heap:
            _, left, s = heapq.heappop(heap)
            right = nxt[left]
            if syms[left] is None or right < 0 or syms[left] + syms[right] != s:
                continue  # stale bigram
            rev[s] = (syms[left], syms[right])
            syms[left], syms[right] = s, None
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            add(prev[left], left)
            add(left, nxt[left])
        out = []

        def resegment(s):
            if (tid := self.id.get(s)) is not None:
                out.append(tid)
            elif s in rev:
                resegment(rev[s][0])
                resegment(rev[s][1])
            else:
                out.extend(self.id["<0x%02X>" % b] for b in s.encode("utf-8"))

        i = 0
        while i >= 0:
            resegment(syms[i])
            i = nxt[i]
        return out

    def encode(self, text, add_special_tokens=True):
        ids = [self.bos] if add_special_tokens and self.add_bos else []
        for frag in self.partition(text):
            if isinstance(frag, int):
                ids.append(frag)
            else:
                ids += self.merge((" " + frag if self.add_space_prefix else frag).replace(" ", "\u2581"))
        return ids


def _varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _key(num, wire):
    return _varint((num << 3) | wire)


def _len_field(num, payload):
    return _key(num, 2) + _varint(len(payload)) + payload


def _int_field(num, value):
    return _key(num, 0) + _varint(value)


def sentencepiece_model_proto(tokens, scores, types, unk, bos, eos, pad):
    """A serialized sentencepiece ModelProto: BPE, byte fallback, identity normalizer without a dummy
    prefix or whitespace folding (what Gemma's tokenizer.model declares). The GGUF stores
    user-defined pieces with raw spaces where SentencePiece has U+2581; they are mapped back."""
    pieces = bytearray()
    for t, s, ty in zip(tokens, scores, types):
        if ty == 4:
            t = t.replace(" ", "\u2581")
        piece = _len_field(1, t.encode("utf-8")) + _key(2, 5) + struct.pack("<f", s) + _int_field(3, ty)
        pieces += _len_field(1, piece)
    trainer = (_int_field(3, 2) + _int_field(4, len(tokens)) + _int_field(35, 1)
               + _int_field(40, unk) + _int_field(41, bos) + _int_field(42, eos) + _int_field(43, pad))
    normalizer = _len_field(1, b"identity") + _int_field(3, 0) + _int_field(4, 0) + _int_field(5, 1)
    return bytes(pieces) + _len_field(2, trainer) + _len_field(3, normalizer)


def gguf_tokenizer(path):
    """(encode(text) -> ids with BOS per add_bos_token, description, cross-check encode or None)."""
    r = GGUFReader(path)
    kind, pre = gguf_field(r, "tokenizer.ggml.model"), gguf_field(r, "tokenizer.ggml.pre")
    add_bos = bool(gguf_field(r, "tokenizer.ggml.add_bos_token", False))
    bos = gguf_field(r, "tokenizer.ggml.bos_token_id")
    tokens = gguf_field(r, "tokenizer.ggml.tokens")
    head = [bos] if add_bos else []
    if kind == "gpt2":
        merges = gguf_field(r, "tokenizer.ggml.merges")
        if pre == "smollm":
            tok = build_smollm_tokenizer(tokens, merges)
            desc = "tokenizers BPE over the GGUF vocab/merges, llama.cpp 'smollm' pre-tokenizer (tokenizer_golden.py)"
        elif pre == "qwen2":
            vocab = {t: i for i, t in enumerate(tokens)}
            tok = Tokenizer(models.BPE(vocab, [tuple(m.split(" ", 1)) for m in merges]))
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ])
            tok.decoder = decoders.ByteLevel()
            desc = "tokenizers BPE over the GGUF vocab/merges, llama.cpp 'qwen2' pre-tokenizer regex, no normalizer"
        else:
            raise ValueError(f"unhandled pre-tokenizer {pre}")
        desc += f"; BOS {'prepended' if add_bos else 'not added'} (tokenizer.ggml.add_bos_token = {add_bos})"
        return (lambda s: head + tok.encode(s, add_special_tokens=False).ids), desc, None
    if kind == "llama":
        import sentencepiece
        scores = [float(x) for x in gguf_field(r, "tokenizer.ggml.scores")]
        types = [int(x) for x in gguf_field(r, "tokenizer.ggml.token_type")]
        spm = LlamaCppSPM(tokens, scores, types, add_bos, bos, bool(gguf_field(r, "tokenizer.ggml.add_space_prefix", True)))
        proto = sentencepiece_model_proto(tokens, scores, types, gguf_field(r, "tokenizer.ggml.unknown_token_id"), bos,
                                          gguf_field(r, "tokenizer.ggml.eos_token_id"), gguf_field(r, "tokenizer.ggml.padding_token_id"))
        sp = sentencepiece.SentencePieceProcessor(model_proto=proto)
        desc = ("llama.cpp's SPM algorithm over the GGUF tokens/scores/types (this file's LlamaCppSPM), checked "
                f"against sentencepiece {sentencepiece.__version__} on a BPE ModelProto built from the same pieces; "
                f"BOS {'prepended' if add_bos else 'not added'} (tokenizer.ggml.add_bos_token = {add_bos})")
        return spm.encode, desc, (lambda s: head + sp.encode(s))
    raise ValueError(f"unhandled tokenizer model {kind}")


def tokenizer_section(name, tok, gguf_encode, gguf_desc, cross):
    fixture = os.path.join("models", "hf", f"{name}-f32", "tokenizer.json")
    with tempfile.TemporaryDirectory() as tmp:
        if os.path.exists(fixture):
            src = fixture
        else:
            tok.save_pretrained(tmp)
            src = os.path.join(tmp, "tokenizer.json")
        tj = Tokenizer.from_file(src)
    src_desc = ("models/hf/%s-f32/tokenizer.json (hf_fixtures.py)" % name if src == fixture
                else "tokenizer.json from the same save_pretrained as hf_fixtures.py, in a temporary folder")
    diff = {"tokenizers_vs_transformers": [], "sentencepiece_vs_llamacpp_spm": [],
            "transformers_vs_gguf_special_tokens_only": [], "transformers_vs_gguf_pieces": []}
    n_bos = len(gguf_encode(""))  # the GGUF's own prefix (its BOS, or nothing)

    def entry(text, label=None, long=False):
        ids = tok(text, add_special_tokens=True)["input_ids"]
        nos = tok(text, add_special_tokens=False)["input_ids"]
        tj_ids = tj.encode(text, add_special_tokens=True).ids
        g = gguf_encode(text)
        name_ = label or text
        e = {"text": label} if long else {"text": text}
        e["ids"] = ids
        if long and nos in (ids, g[n_bos:]):
            # the long texts leave out a copy that equals another array (files stay < 200 KB)
            e["add_special_tokens_false_same_as"] = "ids" if nos == ids else ("gguf" if n_bos == 0 else "gguf[1:]")
        else:
            e["add_special_tokens_false"] = nos
        e["tokenizers_agrees"] = tj_ids == ids
        if tj_ids != ids:
            e["tokenizers_ids"] = tj_ids
            diff["tokenizers_vs_transformers"].append(name_)
        e["gguf"] = g
        if cross is not None:
            c = cross(text)
            if c != g:
                e["gguf_sentencepiece"] = c
                diff["sentencepiece_vs_llamacpp_spm"].append(name_)
        if ids == g:
            e["transformers_vs_gguf"] = "equal"
        elif nos == g[n_bos:]:
            e["transformers_vs_gguf"] = "special_tokens_only"
            diff["transformers_vs_gguf_special_tokens_only"].append(name_)
        else:
            e["transformers_vs_gguf"] = "pieces_differ"
            diff["transformers_vs_gguf_pieces"].append(name_)
        return e

    cases = [entry(t) for t in TOKENIZER_TEXTS]
    files = {p: entry(read_text(p), label=p, long=True) for p in (TEXT, CALIB, EVAL)}
    n = len(cases) + len(files)
    findings = [f"{k}: {len(v)}/{n} texts" + (f" ({', '.join(repr(x)[:32] for x in v)})" if 0 < len(v) < n else "")
                for k, v in diff.items() if v or k != "sentencepiece_vs_llamacpp_spm" or cross is not None]
    tf_prefix = tok("", add_special_tokens=True)["input_ids"]
    findings.append(f"prefix for the empty text: transformers {tf_prefix}, gguf {gguf_encode('')}")
    return {"transformers": f"AutoTokenizer.from_pretrained(dir, gguf_file=...) ({type(tok).__name__})",
            "tokenizers": f"tokenizers {tokenizers.__version__} Tokenizer.from_file({src_desc})",
            "gguf": gguf_desc, "findings": findings, "cases": cases, "files": files}


# ---------------------------------------------------------------- float64 model from the GGUF

def unpermute(w, n_heads):
    """llama.cpp's Q/K row permutation (adjacent RoPE pairs per head) undone: back to HF order."""
    hd = w.shape[0] // n_heads
    return w.reshape(n_heads, hd // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_f64(path):
    r = GGUFReader(path)
    arch = gguf_field(r, "general.architecture")

    def meta(k, default=None):
        return gguf_field(r, f"{arch}.{k}", default)

    t = {x.name: x for x in r.tensors}

    def w(name):
        x = t[name]
        return np.ascontiguousarray(dequantize(x.data, x.tensor_type), dtype=f64)

    nh, nkv, d = meta("attention.head_count"), meta("attention.head_count_kv"), meta("embedding_length")
    hd = meta("attention.key_length", d // nh)
    n_layers = meta("block_count")
    cfg = {"arch": arch, "n_layers": n_layers, "n_heads": nh, "n_kv_heads": nkv, "head_dim": hd, "d": d,
           "eps": float(meta("attention.layer_norm_rms_epsilon")), "rope_theta": float(meta("rope.freq_base"))}
    if arch == "gemma3":
        # llama.cpp's gemma3 constants (not in the GGUF): 5 sliding layers then 1 global, local base 1e4
        cfg.update(sliding_window=int(meta("attention.sliding_window")), rope_local=10000.0,
                   layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n_layers)],
                   attn_scale=256.0 ** -0.5, emb_scale=float(np.sqrt(f64(d))), act="gelu_tanh")
    else:
        cfg.update(layer_types=["full_attention"] * n_layers, attn_scale=hd ** -0.5, emb_scale=1.0, act="silu")
    model = {"config": cfg, "embed": w("token_embd.weight"), "output_norm": w("output_norm.weight"), "layers": []}
    model["output"] = w("output.weight") if "output.weight" in t else model["embed"]
    model["tied"] = "output.weight" not in t
    for i in range(n_layers):
        p = f"blk.{i}."
        L = {"attn_norm": w(p + "attn_norm.weight"), "wq": w(p + "attn_q.weight"), "wk": w(p + "attn_k.weight"),
             "wv": w(p + "attn_v.weight"), "wo": w(p + "attn_output.weight"), "ffn_norm": w(p + "ffn_norm.weight"),
             "w_gate": w(p + "ffn_gate.weight"), "w_up": w(p + "ffn_up.weight"), "w_down": w(p + "ffn_down.weight")}
        if arch == "llama":
            L["wq"], L["wk"] = unpermute(L["wq"], nh), unpermute(L["wk"], nkv)
        for b in ("q", "k", "v"):
            if p + f"attn_{b}.bias" in t:
                L["b" + b] = w(p + f"attn_{b}.bias")
        if arch == "gemma3":
            for k, g in (("q_norm", "attn_q_norm"), ("k_norm", "attn_k_norm"),
                         ("post_attn_norm", "post_attention_norm"), ("post_ffn_norm", "post_ffw_norm")):
                L[k] = w(p + g + ".weight")
        model["layers"].append(L)
    return model


def hf_weight_map(model):
    """(HF state-dict name, f64 array, offset) for every tensor; offset = what transformers is
    expected to have subtracted (Gemma's +1 on norm weights)."""
    off = 1.0 if model["config"]["arch"] == "gemma3" else 0.0
    out = [("model.embed_tokens.weight", model["embed"], 0.0), ("model.norm.weight", model["output_norm"], off)]
    if not model["tied"]:
        out.append(("lm_head.weight", model["output"], 0.0))
    names = {"attn_norm": "input_layernorm", "wq": "self_attn.q_proj.weight", "wk": "self_attn.k_proj.weight",
             "wv": "self_attn.v_proj.weight", "wo": "self_attn.o_proj.weight", "bq": "self_attn.q_proj.bias",
             "bk": "self_attn.k_proj.bias", "bv": "self_attn.v_proj.bias", "w_gate": "mlp.gate_proj.weight",
             "w_up": "mlp.up_proj.weight", "w_down": "mlp.down_proj.weight", "q_norm": "self_attn.q_norm",
             "k_norm": "self_attn.k_norm"}
    if model["config"]["arch"] == "gemma3":
        names.update(ffn_norm="pre_feedforward_layernorm", post_attn_norm="post_attention_layernorm",
                     post_ffn_norm="post_feedforward_layernorm")
    else:
        names.update(ffn_norm="post_attention_layernorm")
    for i, L in enumerate(model["layers"]):
        for k, a in L.items():
            n = names[k]
            is_norm = not n.endswith(("weight", "bias"))
            out.append((f"model.layers.{i}.{n}" + (".weight" if is_norm else ""), a, off if is_norm else 0.0))
    return out


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope_tables(T, hd, theta):
    inv = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=f64) / hd))
    ang = np.arange(T, dtype=f64)[:, None] * inv[None, :]
    return np.cos(ang), np.sin(ang)


def rope(x, n_heads, hd, cos, sin):
    """Rotate-half RoPE on [T, n_heads*hd] (HF channel order)."""
    T = x.shape[0]
    x = x.reshape(T, n_heads, hd)
    a, b = x[..., : hd // 2], x[..., hd // 2:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([a * c - b * s, b * c + a * s], axis=-1).reshape(T, n_heads * hd)


# kvscope's quantizer and low-rank branch, shared with the llama grid reference (same definitions).
from kv_grid_reference import compress, fake_quantize  # noqa: E402,F401


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def forward(model, tokens, case=None, bases=None, observe=None):
    """Final hidden states [T, d] (after the output norm) in float64."""
    cfg = model["config"]
    nh, nkv, hd, eps = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"], cfg["eps"]
    gemma = cfg["arch"] == "gemma3"
    T = len(tokens)
    tables = {"full_attention": rope_tables(T, hd, cfg["rope_theta"])}
    if gemma:
        tables["sliding_attention"] = rope_tables(T, hd, cfg["rope_local"])
    pos = np.arange(T)
    causal = pos[None, :] <= pos[:, None]
    masks = {"full_attention": causal}
    if gemma:
        masks["sliding_attention"] = causal & (pos[:, None] - pos[None, :] < cfg["sliding_window"])
    w = case["window"] if case else 0
    old = pos[None, :] <= pos[:, None] - w  # key s <= t - w reads the compressed branch
    x = model["embed"][np.asarray(tokens)] * cfg["emb_scale"]
    for li, L in enumerate(model["layers"]):
        kind = cfg["layer_types"][li]
        cos, sin = tables[kind]
        mask = masks[kind]
        h = rms_norm(x, L["attn_norm"], eps)
        q, k, v = h @ L["wq"].T, h @ L["wk"].T, h @ L["wv"].T
        if "bq" in L:
            q, k, v = q + L["bq"], k + L["bk"], v + L["bv"]
        if gemma:
            q = rms_norm(q.reshape(T, nh, hd), L["q_norm"], eps).reshape(T, nh * hd)
            k = rms_norm(k.reshape(T, nkv, hd), L["k_norm"], eps).reshape(T, nkv * hd)
        if observe:
            observe(li, k, v)
        if case:
            kc = compress(k, case["k_rank"], case["k_bits"], case["group"], bases[0][li] if bases else None)
            vc = compress(v, case["v_rank"], case["v_bits"], case["group"], bases[1][li] if bases else None)
        else:
            kc, vc = k, v
        q, kr, kcr = rope(q, nh, hd, cos, sin), rope(k, nkv, hd, cos, sin), rope(kc, nkv, hd, cos, sin)
        att = np.empty((T, nh * hd))
        for head in range(nh):
            g = head // (nh // nkv)
            sl, gl = slice(head * hd, (head + 1) * hd), slice(g * hd, (g + 1) * hd)
            s = q[:, sl] @ kr[:, gl].T
            if case:
                s = np.where(old, q[:, sl] @ kcr[:, gl].T, s)
            s = np.where(mask, s * cfg["attn_scale"], -np.inf)
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            if case:
                att[:, sl] = np.where(old, 0, p) @ v[:, gl] + np.where(old, p, 0) @ vc[:, gl]
            else:
                att[:, sl] = p @ v[:, gl]
        a = att @ L["wo"].T
        if gemma:
            a = rms_norm(a, L["post_attn_norm"], eps)
        x = x + a
        h = rms_norm(x, L["ffn_norm"], eps)
        gate, up = h @ L["w_gate"].T, h @ L["w_up"].T
        act = gelu_tanh(gate) if cfg["act"] == "gelu_tanh" else gate / (1 + np.exp(-gate))
        f = (act * up) @ L["w_down"].T
        if gemma:
            f = rms_norm(f, L["post_ffn_norm"], eps)
        x = x + f
    return rms_norm(x, model["output_norm"], eps)


def mean_nll(model, hidden, tokens, block=64):
    """Mean of -log p(x_{t+1} | x_<=t), the head applied in row blocks (Gemma's vocab is 262144)."""
    tgt = np.asarray(tokens[1:])
    total = 0.0
    for start in range(0, len(tokens) - 1, block):
        end = min(start + block, len(tokens) - 1)
        lg = hidden[start:end] @ model["output"].T
        m = lg.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(lg - m).sum(axis=1, keepdims=True)))[:, 0]
        total += float(np.sum(lse - lg[np.arange(end - start), tgt[start:end]]))
    return total / (len(tokens) - 1)


def canonical_signs(u):
    idx = np.argmax(np.abs(u), axis=0)
    signs = np.sign(u[idx, np.arange(u.shape[1])])
    signs[signs == 0] = 1
    return u * signs


def calibration_bases(model, tokens):
    grams = {}

    def observe(li, k, v):
        grams[li] = (k.T @ k, v.T @ v)

    forward(model, tokens, observe=observe)
    kb, vb = [], []
    for li in range(len(model["layers"])):
        for gram, dst in zip(grams[li], (kb, vb)):
            _, u = np.linalg.eigh(gram)
            dst.append(canonical_signs(u[:, ::-1]))
    return kb, vb


# ---------------------------------------------------------------- transformers side

def hf_nll(model, ids):
    with torch.no_grad():
        lg = model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(lg[:-1], dim=-1)
    return float(-lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].mean())


def hf_kv(model, ids):
    """Pre-RoPE K and V per layer, [T, n_kv*head_dim] float64, from forward hooks."""
    cfg = model.config
    nkv = cfg.num_key_value_heads
    T = len(ids)
    ks, vs, hooks = {}, {}, []
    for li, layer in enumerate(model.model.layers):
        att = layer.self_attn
        if hasattr(att, "k_norm"):
            # k_norm sees [B, n_kv, T, head_dim] (after view + transpose)
            def kfn(mod, inp, out, li=li):
                assert out.shape[1] == nkv and out.shape[2] == T, out.shape
                ks[li] = out[0].transpose(0, 1).reshape(T, -1).double().numpy()
            hooks.append(att.k_norm.register_forward_hook(kfn))
        else:
            hooks.append(att.k_proj.register_forward_hook(
                lambda mod, inp, out, li=li: ks.__setitem__(li, out[0].double().numpy())))
        hooks.append(att.v_proj.register_forward_hook(
            lambda mod, inp, out, li=li: vs.__setitem__(li, out[0].double().numpy())))
    with torch.no_grad():
        model(torch.tensor([ids]))
    for h in hooks:
        h.remove()
    return [ks[i] for i in range(len(ks))], [vs[i] for i in range(len(vs))]


def spectrum(x):
    """Singular values, each to 5 significant digits (6 would not fit the files in 200 KB) but no
    finer than 1e-6·σ₁ (float32 activations do not determine the small ones better), with r90/r99."""
    s = np.linalg.svd(x, compute_uv=False)
    e = np.cumsum(s ** 2) / np.sum(s ** 2)
    decimals = 6 - int(np.floor(np.log10(s[0])))  # the place of 1e-6·σ₁

    def fmt(v):
        v = float(f"{v:.4e}")
        return round(v, decimals) if decimals >= 0 else v
    return {"r90": int(np.searchsorted(e, 0.90) + 1), "r99": int(np.searchsorted(e, 0.99) + 1),
            "values": [fmt(v) for v in s]}


def config_summary(cfg):
    keys = ["model_type", "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
            "head_dim", "intermediate_size", "vocab_size", "rms_norm_eps", "rope_parameters", "rope_scaling",
            "rope_theta", "rope_local_base_freq", "query_pre_attn_scalar", "sliding_window", "layer_types",
            "hidden_act", "hidden_activation", "attention_bias", "tie_word_embeddings",
            "final_logit_softcapping", "attn_logit_softcapping", "bos_token_id", "eos_token_id"]
    d = cfg.to_dict()
    return {k: d[k] for k in keys if k in d}


# ---------------------------------------------------------------- one model

def run(name):
    t0 = time.time()
    d, file = MODELS[name]
    path = os.path.join(d, file)
    log(f"{name}: tokenizers")
    tok = AutoTokenizer.from_pretrained(d, gguf_file=file)
    gguf_encode, gguf_desc, cross = gguf_tokenizer(path)
    toks = tokenizer_section(name, tok, gguf_encode, gguf_desc, cross)
    for f in toks["findings"]:
        log(f"  {name}: {f}")
    text_ids = toks["files"][TEXT]["gguf"]
    calib_ids = toks["files"][CALIB]["gguf"]
    if len(calib_ids) > 2048:
        log(f"  {name}: WARNING calibration text is {len(calib_ids)} tokens (> 2048)")
    tf_ids = toks["files"][TEXT]["ids"]

    log(f"{name}: transformers float32 ({time.time() - t0:.0f} s)")
    hf = AutoModelForCausalLM.from_pretrained(d, gguf_file=file, dtype=torch.float32)
    hf.eval()
    base_tf = hf_nll(hf, text_ids)
    base_tf_literal = hf_nll(hf, tf_ids) if tf_ids != text_ids else None
    ks, vs = hf_kv(hf, text_ids)
    spectra = []
    for li, (k, v) in enumerate(zip(ks, vs)):
        spectra.append({"layer": li, "k": spectrum(k), "v": spectrum(v),
                        "k_centered": spectrum(k - k.mean(axis=0)), "v_centered": spectrum(v - v.mean(axis=0))})

    log(f"{name}: float64 model from the GGUF ({time.time() - t0:.0f} s)")
    model = load_f64(path)
    cfg = model["config"]
    sd = hf.state_dict()
    # every tensor must be transformers' exactly, except that transformers stores Gemma's norm
    # weights as (GGUF - 1), rounded to float32 (inexact for weights below 0.5)
    weight_diff, norm_diff, norm_offset = 0.0, 0.0, None
    for hname, a, off in hf_weight_map(model):
        ref = sd[hname].double().numpy()
        diff = float(np.max(np.abs((a - off) - ref)))
        if off:
            norm_diff = max(norm_diff, diff)
            if hname == "model.norm.weight":
                norm_offset = {"gguf_output_norm_mean": float(a.mean()), "transformers_norm_weight_mean": float(ref.mean())}
        else:
            weight_diff = max(weight_diff, diff)
    if weight_diff != 0.0 or norm_diff > 1e-6:
        raise RuntimeError(f"{name}: GGUF weights differ from transformers' by {weight_diff} (norms: {norm_diff})")
    hf_layer_types = getattr(hf.config, "layer_types", None)
    if hf_layer_types is not None and list(hf_layer_types) != cfg["layer_types"]:
        raise RuntimeError(f"{name}: layer types differ: transformers {hf_layer_types}")
    hf_summary = config_summary(hf.config)
    del hf, sd

    observed = {}
    base64 = mean_nll(model, forward(model, text_ids, observe=lambda li, k, v: observed.__setitem__(li, (k, v))), text_ids)
    rel = abs(base64 - base_tf) / abs(base_tf)
    log(f"  {name}: baseline mean NLL transformers f32 {base_tf:.8f}  float64 {base64:.8f}  rel {rel:.2e}")
    if rel > 1e-4:
        raise RuntimeError(f"{name}: float64 baseline {base64} vs transformers {base_tf}: rel {rel:.2e} > 1e-4")
    act_diff = max(max(float(np.max(np.abs(observed[li][0] - ks[li]))) / float(np.max(np.abs(ks[li]))),
                       float(np.max(np.abs(observed[li][1] - vs[li]))) / float(np.max(np.abs(vs[li]))))
                   for li in range(cfg["n_layers"]))
    del observed, ks, vs

    log(f"{name}: calibration bases ({len(calib_ids)} tokens) ({time.time() - t0:.0f} s)")
    bases = calibration_bases(model, calib_ids)
    rows = []
    for case in CASES:
        m = mean_nll(model, forward(model, text_ids, case, bases), text_ids)
        rows.append(dict(case, mean_nll=m, delta_nll=m - base64, perplexity=float(np.exp(m))))
        log(f"  {name}: {case['name']}: mean NLL {m:.6f}  dNLL {m - base64:+.6f}")

    doc = {
        "generator": "Tests/Reference/families_reference.py",
        "model": file,
        "model_sha256": sha256(path),
        "architecture": cfg["arch"],
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "tokenizers": tokenizers.__version__},
        "text": TEXT,
        "n_tokens": len(text_ids),
        "calibration": CALIB,
        "calibration_n_tokens": len(calib_ids),
        "model_ids": f"tokenizer.files[{TEXT!r}].gguf: the sequence every baseline/spectra/compressed number uses",
        "transformers_config": hf_summary,
        "tokenizer": toks,
        "baseline": {
            "transformers_float32_mean_nll": base_tf,
            "transformers_float32_perplexity": float(np.exp(base_tf)),
            "transformers_float32_mean_nll_on_transformers_ids": base_tf_literal,
            "transformers_ids_note": ("transformers' own add_special_tokens=True ids of the text, where they differ "
                                      "from model_ids (else null)"),
            "float64_mean_nll": base64,
            "float64_perplexity": float(np.exp(base64)),
            "relative_difference": rel,
        },
        "checks": {
            "gguf_vs_transformers_weights_max_abs_diff": weight_diff,
            "gemma_norms_max_abs_diff_gguf_minus_1_vs_transformers": norm_diff if norm_offset else None,
            "gemma_norm_offset": norm_offset,
            "float64_vs_transformers_kv_max_rel_diff": act_diff,
        },
        "spectra": {"source": ("transformers float32 activations on model_ids, SVD in float64; values to 5 significant "
                                "digits, none finer than 1e-6 of the largest"),
                    "layers": spectra},
        "compressed": {
            "source": "float64 numpy forward pass over the GGUF weights (gguf-py dequantize)",
            "bases": "eigh of the uncentered K^T K / V^T V of the exact float64 model on the calibration text",
            "baseline_mean_nll": base64,
            "baseline_perplexity": float(np.exp(base64)),
            "cases": rows,
        },
    }
    os.makedirs(OUT_DIR, exist_ok=True)
    out = os.path.join(OUT_DIR, f"{name}.json")
    with open(out, "w") as f:
        f.write(dumps(doc) + "\n")
    log(f"{name}: wrote {out} ({os.path.getsize(out) // 1024} KB, {time.time() - t0:.0f} s)")


def dumps(obj, indent=0):
    """JSON with nested objects indented and lists of scalars on one line (keeps the files small)."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in obj):
            return "[" + ",".join(json.dumps(v, ensure_ascii=False) for v in obj) + "]"
        return "[\n" + ",\n".join(inner + dumps(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def main():
    names = sys.argv[1:] or list(MODELS)
    for n in names:
        if n not in MODELS:
            sys.exit(f"families_reference: unknown model {n!r} (known: {', '.join(MODELS)})")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for n in names:
        run(n)


if __name__ == "__main__":
    main()
