#!/usr/bin/python3
"""Golden fixtures for the tensor engine's ops, from PyTorch.

Run:  /usr/bin/python3 scripts/reference/tensor_ops.py      (Debian python3-torch; CI never runs this)
Writes test/fixtures/tensor/ops.json, read by test/reference/tensor/ops.test.ts.

Inputs are drawn in float32 from a seeded generator. Outputs and gradients are computed by PyTorch in float64 from
those float32 inputs (the exact math, so the test's tolerance measures only our float32 error), except where
PyTorch's own float32 behaviour is the reference: RoPE's cos/sin tables are built in float32 as Hugging Face Llama
builds them, fp16 is torch's .half() conversion, and AdamW also runs in float32 next to float64.

Each op's gradients are those of L = sum(out * dout) for a random dout stored with the case.

Format (version 1): {"format": "neuroshard-tensor-ops", "version": 1, "cases": [{"name", "op", "params",
"tensors": {name: {"dtype": "f32"|"f64"|"i32"|"u16"|"i8", "shape": [...], "data": base64 of little-endian bytes}}}]}
"""
import base64
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
GEN = torch.Generator().manual_seed(1234)
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "test", "fixtures", "tensor", "ops.json")

DTYPES = {torch.float32: "f32", torch.float64: "f64", torch.int32: "i32", torch.int16: "u16", torch.int8: "i8"}
cases = []


def enc(t, as_dtype=None):
    t = t.detach().contiguous()
    if as_dtype is not None:
        t = t.to(as_dtype)
    if t.dtype == torch.float64:
        t = t.to(torch.float32)  # everything float is stored as float32
    if t.dtype == torch.int64:
        t = t.to(torch.int32)
    if t.dtype == torch.float16:
        t = t.view(torch.int16)
    name = DTYPES[t.dtype]
    data = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
    return {"dtype": name, "shape": list(t.shape), "data": base64.b64encode(data).decode("ascii")}


def add(name, op, params, **tensors):
    cases.append({"name": name, "op": op, "params": params, "tensors": {k: enc(v) for k, v in tensors.items()}})


def randn(*shape, std=1.0):
    return (torch.randn(*shape, generator=GEN) * std).to(torch.float32)


def grads_of(fn, inputs, dout):
    """Runs fn on float64 copies of the float32 inputs; returns (out, [grad per input]) of L = sum(out * dout)."""
    xs = [x.to(torch.float64).requires_grad_(True) for x in inputs]
    out = fn(*xs)
    (out * dout.to(torch.float64)).sum().backward()
    return out, [x.grad for x in xs]


# ---- matmul and linear ------------------------------------------------------------------------------------------

for transA in (False, True):
    for transB in (False, True):
        for batch in (None, 3):
            M, K, N = 5, 7, 4
            bd = [] if batch is None else [batch]
            a = randn(*bd, *((K, M) if transA else (M, K)))
            b = randn(*bd, *((N, K) if transB else (K, N)))
            opA = (lambda x: x.transpose(-1, -2)) if transA else (lambda x: x)
            opB = (lambda x: x.transpose(-1, -2)) if transB else (lambda x: x)
            dout = randn(*bd, M, N)
            out, (da, db) = grads_of(lambda x, y: torch.matmul(opA(x), opB(y)), [a, b], dout)
            add(f"matmul {'T' if transA else 'N'}{'T' if transB else 'N'} batch={batch}", "matmul",
                {"transA": transA, "transB": transB}, a=a, b=b, dout=dout, out=out, da=da, db=db)

x = randn(2, 3, 16)
w = randn(8, 16, std=0.25)
dout = randn(2, 3, 8)
out, (dx, dw) = grads_of(lambda x, w: F.linear(x, w), [x, w], dout)
add("linear [2,3,16]x[8,16]", "linear", {}, x=x, w=w, dout=dout, out=out, dx=dx, dw=dw)

# ---- embedding ----------------------------------------------------------------------------------------------------

table = randn(11, 6)
ids = torch.tensor([[3, 1, 3, 0], [10, 3, 1, 7]], dtype=torch.int64)
dout = randn(2, 4, 6)
out, (dtable,) = grads_of(lambda t: F.embedding(ids, t), [table], dout)
add("embedding repeated ids", "embedding", {}, table=table, ids=ids, dout=dout, out=out, dtable=dtable)

# ---- RMSNorm (as LlamaRMSNorm) ------------------------------------------------------------------------------------


def rmsnorm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


for eps in (1e-5, 1e-6):
    x = randn(2, 5, 32, std=2.0)
    w = (1 + 0.1 * torch.randn(32, generator=GEN)).to(torch.float32)
    dout = randn(2, 5, 32)
    out, (dx, dw) = grads_of(lambda x, w: rmsnorm(x, w, eps), [x, w], dout)
    add(f"rmsnorm eps={eps}", "rmsnorm", {"eps": eps}, x=x, w=w, dout=dout, out=out, dx=dx, dw=dw)

# ---- RoPE (Hugging Face Llama: rotate_half, float32 tables) -------------------------------------------------------


def hf_cos_sin(D, theta, positions):
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    freqs = positions.float()[:, None] @ inv_freq[None, :]  # [T, D/2] float32, as LlamaRotaryEmbedding
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()  # float32


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


for theta, offset, T in ((10000.0, 0, 6), (500000.0, 37, 5), (10000.0, 2000, 3)):
    B, H, D = 2, 3, 16
    x = randn(B, T, H, D)
    positions = torch.arange(offset, offset + T)
    cos, sin = hf_cos_sin(D, theta, positions)
    cos64 = cos.to(torch.float64)[None, :, None, :]
    sin64 = sin.to(torch.float64)[None, :, None, :]
    dout = randn(B, T, H, D)
    out, (dx,) = grads_of(lambda x: x * cos64 + rotate_half(x) * sin64, [x], dout)
    add(f"rope theta={theta} offset={offset}", "rope", {"theta": theta, "posOffset": offset}, x=x, dout=dout, out=out, dx=dx)

# ---- causal GQA attention -----------------------------------------------------------------------------------------


def attention(q, k, v):
    # q [B, T, H, D], k/v [B, S, KV, D]; query t sits at key position t + S - T
    B, T, H, D = q.shape
    S, KV = k.shape[1], k.shape[2]
    rep = H // KV
    kk = k.repeat_interleave(rep, dim=2)  # HF repeat_kv: head h uses KV head h // rep
    vv = v.repeat_interleave(rep, dim=2)
    qh, kh, vh = q.transpose(1, 2), kk.transpose(1, 2), vv.transpose(1, 2)  # [B, H, *, D]
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(D)
    t_idx = torch.arange(T)[:, None] + (S - T)
    s_idx = torch.arange(S)[None, :]
    scores = scores.masked_fill(s_idx > t_idx, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ vh).transpose(1, 2)  # [B, T, H, D]


for B, T, S, H, KV, D in ((2, 6, 6, 4, 2, 8), (1, 5, 5, 4, 1, 16), (1, 3, 7, 4, 2, 8), (2, 4, 4, 2, 2, 8)):
    q = randn(B, T, H, D)
    k = randn(B, S, KV, D)
    v = randn(B, S, KV, D)
    dout = randn(B, T, H, D)
    out, (dq, dk, dv) = grads_of(attention, [q, k, v], dout)
    add(f"attention B={B} T={T} S={S} H={H} KV={KV} D={D}", "attention", {}, q=q, k=k, v=v, dout=dout, out=out, dq=dq, dk=dk, dv=dv)

# ---- SwiGLU -------------------------------------------------------------------------------------------------------

gate = randn(3, 4, 10, std=3.0)
up = randn(3, 4, 10)
dout = randn(3, 4, 10)
out, (dgate, dup) = grads_of(lambda g, u: F.silu(g) * u, [gate, up], dout)
add("swiglu", "swiglu", {}, gate=gate, up=up, dout=dout, out=out, dgate=dgate, dup=dup)

# ---- residual -----------------------------------------------------------------------------------------------------

a = randn(2, 3, 8)
b = randn(2, 3, 8)
dout = randn(2, 3, 8)
out, (da, db) = grads_of(lambda a, b: a + b, [a, b], dout)
add("residual", "residual", {}, a=a, b=b, dout=dout, out=out, da=da, db=db)

# ---- cross-entropy ------------------------------------------------------------------------------------------------

for name, targets in (
    ("with ignored rows", torch.tensor([[1, -100, 30, 0, 63], [-100, 5, 5, 17, 2]])),
    ("no ignored rows", torch.tensor([[4, 9, 0, 63, 22], [1, 2, 3, 4, 5]])),
):
    logits = randn(2, 5, 64, std=3.0)
    lg = logits.to(torch.float64).requires_grad_(True)
    loss = F.cross_entropy(lg.reshape(-1, 64), targets.reshape(-1), ignore_index=-100, reduction="mean")
    loss.backward()
    add(f"cross-entropy {name}", "crossEntropy", {"ignoreIndex": -100, "loss": loss.item()},
        logits=logits, targets=targets, dlogits=lg.grad)

# ---- AdamW with global-norm clipping ------------------------------------------------------------------------------

cfg = {"lr": 0.01, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weightDecay": 0.1, "maxGradNorm": 1.0, "steps": 4}
p0 = [randn(6, 5), randn(5)]
stds = [0.05, 0.5, 1.0, 0.1]  # global norms ≈ 0.3, 3, 6, 0.6: steps 1 and 4 unclipped, 2 and 3 clipped
grads = [[randn(6, 5, std=stds[s]), randn(5, std=stds[s])] for s in range(cfg["steps"])]
tensors = {"p0_0": p0[0], "p0_1": p0[1]}
for s, gs in enumerate(grads):
    tensors[f"g{s}_0"], tensors[f"g{s}_1"] = gs
for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
    params = [p.clone().to(dtype).requires_grad_(True) for p in p0]
    opt = torch.optim.AdamW(params, lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"], weight_decay=cfg["weightDecay"])
    norms = []
    for s, gs in enumerate(grads):
        for p, g in zip(params, gs):
            p.grad = g.clone().to(dtype)
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, cfg["maxGradNorm"])))
        opt.step()
        tensors[f"p{s + 1}_0_{tag}"], tensors[f"p{s + 1}_1_{tag}"] = params[0].detach().clone(), params[1].detach().clone()
    cfg[f"gradNorms_{tag}"] = norms
add("adamw 4 steps with clipping", "adamw", cfg, **tensors)

# ---- fp16 and int8 ------------------------------------------------------------------------------------------------

special = torch.tensor([0.0, -0.0, 1.0, -2.0, 65504.0, 65519.0, 65520.0, 1e9, float("inf"), float("-inf"),
                        2.0 ** -14, 2.0 ** -24, 2.0 ** -25, 1.5 * 2.0 ** -25, 3 * 2.0 ** -25, 1 + 2.0 ** -11,
                        1 + 3 * 2.0 ** -11, 0.1, -0.3333333], dtype=torch.float32)
mags = torch.pow(2.0, torch.randint(-30, 17, (300,), generator=GEN).to(torch.float32))
x = torch.cat((special, randn(300) * mags))
add("fp16 conversion", "fp16", {}, x=x, half=x.to(torch.float16))


def int8_blocks(x, block):
    n = x.numel()
    nb = (n + block - 1) // block
    pad = torch.zeros(nb * block, dtype=torch.float64)
    pad[:n] = x.to(torch.float64)
    blocks = pad.reshape(nb, block)
    scales = (blocks.abs().amax(dim=1) / 127).to(torch.float32)  # stored as float32
    s64 = scales.to(torch.float64)[:, None]
    r = torch.where(s64 > 0, blocks / torch.where(s64 > 0, s64, torch.ones_like(s64)), torch.zeros_like(blocks))
    q = (torch.sign(r) * torch.floor(r.abs() + 0.5)).clamp(-127, 127)  # round half away from zero
    deq = (q * s64).reshape(-1)[:n]
    return q.reshape(-1)[:n].to(torch.int8), scales, deq


for n, block in ((257, 64), (100, 7), (33, 256)):
    x = randn(n) * torch.pow(10.0, torch.randint(-3, 3, (n,), generator=GEN).to(torch.float32))
    if n >= 2 * block:
        x[block:2 * block] = 0  # an all-zero block
    q, scales, deq = int8_blocks(x, block)
    add(f"int8 n={n} block={block}", "int8", {"blockSize": block}, x=x, q=q, scales=scales, deq=deq)

doc = {
    "format": "neuroshard-tensor-ops",
    "version": 1,
    "generator": "scripts/reference/tensor_ops.py",
    "torch": torch.__version__,
    "cases": cases,
}
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {len(cases)} cases to {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)
