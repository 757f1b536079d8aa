# PyTorch CPU anchor for NeuroShard's training-step and decode benchmarks.
#
# Run with Debian's PyTorch (apt-get install -y python3-torch), which lives under /usr/bin/python3:
#   OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=2 /usr/bin/python3 torch_anchor.py --threads 1
# (the best 2-core setting here: OpenBLAS takes both cores for the matrix products, torch itself keeps one thread)
# Prints human lines, then one JSON line last: {"train_tok_s", "decode_tok_s", "gemm_gflops" (with --gemm), "peak_rss_mb", ...}.
# Protocol: 2 warm-up steps, then --reps repetitions of --steps steps; the median repetition is reported.
# Decode: an 8-token prompt, then --decode-tokens greedy tokens at batch 1 with the KV cache.
#
# Copied from ../shared/bench/torch_anchor.py for `npm run bench` (scripts/bench.mjs). Extensions, all additive:
# "train_ms" {forward, backward, optimizer} in the JSON line (mean per step of the median repetition), and
# --gemm-min-s / --gemm-reps to shorten the GEMM timing for `npm run bench -- --quick`.
#
# The model is the NeuroLLM block as the project defines it: pre-norm RMSNorm (eps 1e-6), RoPE theta 10000 in the
# rotate-half layout (the Hugging Face Llama convention), grouped-query attention, SwiGLU MLP, untied LM head,
# AdamW. Thread note: give OpenBLAS the cores and keep OpenMP at 1; stacking both pools halves throughput on 2 cores.
import argparse, json, math, resource, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=1)
p.add_argument("--dim", type=int, default=256)
p.add_argument("--layers", type=int, default=4)
p.add_argument("--heads", type=int, default=4)
p.add_argument("--kv-heads", type=int, default=2)
p.add_argument("--ffn", type=int, default=688)
p.add_argument("--vocab", type=int, default=4096)
p.add_argument("--seq", type=int, default=128)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--steps", type=int, default=5, help="timed steps per repetition")
p.add_argument("--reps", type=int, default=3)
p.add_argument("--decode-tokens", type=int, default=64)
p.add_argument("--gemm", action="store_true", help="also time torch.mm on the benchmark shapes")
p.add_argument("--gemm-min-s", type=float, default=0.25, help="minimum seconds per GEMM timing sample")
p.add_argument("--gemm-reps", type=int, default=3, help="GEMM timing samples per shape (median reported)")
a = p.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(0)
HD = a.dim // a.heads


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(n, hd, base=10000.0):
    inv = 1.0 / (base ** (torch.arange(0, hd, 2).float() / hd))
    f = torch.outer(torch.arange(n).float(), inv)
    emb = torch.cat((f, f), dim=-1)
    return emb.cos(), emb.sin()  # [n, hd]


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, cos, sin):  # x [B, H, T, hd]; cos/sin [T, hd]
    return x * cos + rotate_half(x) * sin


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm = RMSNorm(a.dim)
        self.post_attention_layernorm = RMSNorm(a.dim)
        self.q_proj = nn.Linear(a.dim, a.heads * HD, bias=False)
        self.k_proj = nn.Linear(a.dim, a.kv_heads * HD, bias=False)
        self.v_proj = nn.Linear(a.dim, a.kv_heads * HD, bias=False)
        self.o_proj = nn.Linear(a.heads * HD, a.dim, bias=False)
        self.gate_proj = nn.Linear(a.dim, a.ffn, bias=False)
        self.up_proj = nn.Linear(a.dim, a.ffn, bias=False)
        self.down_proj = nn.Linear(a.ffn, a.dim, bias=False)

    def forward(self, x, cos, sin, cache=None):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, a.heads, HD).transpose(1, 2)
        k = self.k_proj(h).view(B, T, a.kv_heads, HD).transpose(1, 2)
        v = self.v_proj(h).view(B, T, a.kv_heads, HD).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            if "k" in cache:
                k = torch.cat((cache["k"], k), dim=2)
                v = torch.cat((cache["v"], v), dim=2)
            cache["k"], cache["v"] = k, v
        rep = a.heads // a.kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HD))
        S = k.shape[2]
        if T > 1:
            mask = torch.full((T, S), float("-inf")).triu(S - T + 1)
            att = att + mask
        o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, a.heads * HD)
        x = x + self.o_proj(o)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class NeuroLLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.dim)
        self.layers = nn.ModuleList(Block() for _ in range(a.layers))
        self.norm = RMSNorm(a.dim)
        self.lm_head = nn.Linear(a.dim, a.vocab, bias=False)
        cos, sin = rope_tables(max(a.seq, a.decode_tokens + 8) * 2, HD)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)

    def forward(self, idx, pos0=0, caches=None):
        T = idx.shape[1]
        cos, sin = self.cos[pos0 : pos0 + T], self.sin[pos0 : pos0 + T]
        x = self.embed_tokens(idx)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, None if caches is None else caches[i])
        return self.lm_head(self.norm(x))


model = NeuroLLM()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
nparams = sum(p.numel() for p in model.parameters())
tokens = a.batch * a.seq
x = torch.randint(0, a.vocab, (a.batch, a.seq))
y = torch.randint(0, a.vocab, (a.batch, a.seq))


phase = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}


def step():
    t0 = time.perf_counter()
    logits = model(x)
    loss = F.cross_entropy(logits.view(-1, a.vocab), y.view(-1))
    t1 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    t3 = time.perf_counter()
    phase["forward"] += t1 - t0
    phase["backward"] += t2 - t1
    phase["optimizer"] += t3 - t2
    return loss.item()


def blas_info():
    """The BLAS torch runs on and, for OpenBLAS, the kernel it picked (ratios mean nothing without it)."""
    import ctypes, os, re
    m = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    info = {"blas": m.group(1) if m else "unknown", "coretype_env": os.environ.get("OPENBLAS_CORETYPE")}
    torch.ones(64, 64) @ torch.ones(64, 64)  # loads the BLAS library
    try:
        libs = {l.split()[-1] for l in open("/proc/self/maps") if "openblas" in l.lower() and l.split()[-1].startswith("/")}
        for path in sorted(libs):
            lib = ctypes.CDLL(path)
            if hasattr(lib, "openblas_get_corename"):
                lib.openblas_get_corename.restype = ctypes.c_char_p
                lib.openblas_get_config.restype = ctypes.c_char_p
                info.update(openblas=lib.openblas_get_config().decode(), core=lib.openblas_get_corename().decode(), lib=path)
                break
    except OSError:
        pass
    return info


BLAS = blas_info()
print(f"blas {BLAS.get('blas')}: {BLAS.get('openblas', 'not OpenBLAS')}, kernel {BLAS.get('core', 'unknown')} "
      f"(OPENBLAS_CORETYPE {BLAS.get('coretype_env') or 'unset'})")
print(f"torch {torch.__version__} threads {torch.get_num_threads()} params {nparams / 1e6:.2f}M "
      f"dim {a.dim} layers {a.layers} heads {a.heads}/{a.kv_heads} ffn {a.ffn} vocab {a.vocab} seq {a.seq} batch {a.batch}")
step(); step()
train = []
splits = []
for r in range(a.reps):
    for k in phase:
        phase[k] = 0.0
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    dt = (time.perf_counter() - t0) / a.steps
    train.append(tokens / dt)
    splits.append((tokens / dt, {k: round(v / a.steps * 1000, 2) for k, v in phase.items()}))
    print(f"train rep {r}: {dt * 1000:.1f} ms/step, {tokens / dt:.0f} tok/s, loss {loss:.3f}")

decode = []
with torch.no_grad():
    for r in range(a.reps):
        caches = [dict() for _ in range(a.layers)]
        prompt = torch.randint(0, a.vocab, (1, 8))
        logits = model(prompt, 0, caches)
        nxt = logits[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for i in range(a.decode_tokens):
            logits = model(nxt, 8 + i, caches)
            nxt = logits[:, -1:].argmax(-1)
        dt = time.perf_counter() - t0
        decode.append(a.decode_tokens / dt)
        print(f"decode rep {r}: {a.decode_tokens / dt:.1f} tok/s (batch 1, greedy, KV cache)")

gemm = {}
if a.gemm:
    for (m, k, n) in ((512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (64, 768, 3072)):
        A, B = torch.randn(m, k), torch.randn(k, n)
        torch.mm(A, B)
        best = []
        for r in range(a.gemm_reps):
            reps, t0 = 0, time.perf_counter()
            while True:
                torch.mm(A, B)
                reps += 1
                dt = time.perf_counter() - t0
                if dt > a.gemm_min_s:
                    break
            best.append(2 * m * k * n * reps / dt / 1e9)
        best.sort()
        med = best[len(best) // 2]
        gemm[f"{m}x{k}x{n}"] = round(med, 1)
        print(f"gemm {m}x{k}x{n}: {med:.1f} GFLOP/s (median of {len(best)})")

train.sort()
decode.sort()
splits.sort(key=lambda s: s[0])
print(json.dumps({
    "engine": f"torch {torch.__version__}", "threads": a.threads, "params": nparams,
    "blas": BLAS,
    "train_tok_s": round(train[len(train) // 2]), "train_tok_s_best": round(train[-1]),
    "decode_tok_s": round(decode[len(decode) // 2], 1), "decode_tok_s_best": round(decode[-1], 1),
    "train_ms": splits[len(splits) // 2][1],
    "gemm_gflops": gemm or None,
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
}))
