#!/usr/bin/env python3
# Golden fixtures for NeuroLLM, from a plain-PyTorch Llama that follows Hugging Face's LlamaForCausalLM exactly
# (parameter names, pre-norm RMSNorm computed in float32, rotate-half RoPE with float32 angles, grouped-query
# attention, SwiGLU, optional tied head). Debian has no `transformers`, so the model is written out here.
#
# Run with Debian's PyTorch:   /usr/bin/python3 scripts/reference/tiny_llama.py [--out test/fixtures/model]
# Writes (committed; CI never needs torch):
#   golden/          config.json + model.safetensors (F32) + golden.safetensors: input_ids, targets (with -100
#                    entries), logits, loss, grad.<every parameter>, adamw_losses (10 steps of AdamW with
#                    global-norm clipping); hyper-parameters in its __metadata__
#   hf-f16/          a foreign-looking checkpoint: F16 weights, untied, a config.json with fields left to their HF
#                    defaults, an extra rotary_emb.inv_freq buffer as old transformers versions saved; expected.safetensors
#   hf-bf16-tied/    BF16 weights, tied embeddings (no lm_head.weight); expected.safetensors
# Expected logits are PyTorch's float32 forward over the stored weights upcast to float32.
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.to(torch.float32)
        var = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(var + self.eps)
        return self.weight * x.to(dt)


def rope_cos_sin(positions, head_dim, theta):
    # as transformers' LlamaRotaryEmbedding (default rope type): float32 inverse frequencies and angles
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    ang = positions.float()[:, None] * inv[None, :]
    emb = torch.cat((ang, ang), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        H, KV, D, C = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["hidden_size"]
        self.q_proj = nn.Linear(C, H * D, bias=False)
        self.k_proj = nn.Linear(C, KV * D, bias=False)
        self.v_proj = nn.Linear(C, KV * D, bias=False)
        self.o_proj = nn.Linear(H * D, C, bias=False)

    def forward(self, x, cos, sin):
        c = self.c
        B, T, _ = x.shape
        H, KV, D = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        q = self.q_proj(x).view(B, T, H, D).transpose(1, 2)
        k = self.k_proj(x).view(B, T, KV, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, KV, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        att = (q @ k.transpose(2, 3)) / math.sqrt(D)
        mask = torch.full((T, T), float("-inf")).triu(1)
        att = F.softmax(att + mask, dim=-1, dtype=torch.float32).to(q.dtype)
        o = (att @ v).transpose(1, 2).reshape(B, T, H * D)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, Fw = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(C, Fw, bias=False)
        self.up_proj = nn.Linear(C, Fw, bias=False)
        self.down_proj = nn.Linear(Fw, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class LlamaForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Inner(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        if c["tie_word_embeddings"]:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, ids):
        T = ids.shape[1]
        cos, sin = rope_cos_sin(torch.arange(T), self.c["head_dim"], self.c["rope_theta"])
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.model.norm(x))


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                # RMSNorm scales away from 1, so a bug that ignores them shows
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g) * 4)  # std 0.08: logits far from uniform


def full_config(c):
    out = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "rope_scaling": None,
        "torch_dtype": "float32",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
    out.update(c)
    return out


def state(model, dtype):
    sd = {}
    for name, p in model.state_dict().items():
        if model.c["tie_word_embeddings"] and name == "lm_head.weight":
            continue
        sd[name] = p.detach().to(dtype).contiguous()
    return sd


def golden(out):
    c = {
        "hidden_size": 48,
        "intermediate_size": 72,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,  # explicit: H·D = 64 ≠ hidden_size 48
        "rms_norm_eps": 1e-5,
        "rope_theta": 5000.0,
        "vocab_size": 96,
        "max_position_embeddings": 64,
        "tie_word_embeddings": False,
    }
    torch.manual_seed(0)
    model = LlamaForCausalLM(c)
    init_weights(model, 1234)
    d = os.path.join(out, "golden")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(full_config(c), f, indent=2)
    safetensors_io.save(os.path.join(d, "model.safetensors"), state(model, torch.float32))

    B, T = 2, 12
    g = torch.Generator().manual_seed(99)
    ids = torch.randint(0, c["vocab_size"], (B, T), generator=g, dtype=torch.int64)
    targets = torch.randint(0, c["vocab_size"], (B, T), generator=g, dtype=torch.int64)
    targets[0, 3] = -100
    targets[1, 0] = -100

    logits = model(ids)
    loss = F.cross_entropy(logits.view(-1, c["vocab_size"]), targets.view(-1), ignore_index=-100)
    model.zero_grad()
    loss.backward()
    tensors = {
        "input_ids": ids.to(torch.int32),
        "targets": targets.to(torch.int32),
        "logits": logits.detach(),
        "loss": loss.detach().reshape(1),
    }
    for name, p in model.named_parameters():
        tensors["grad." + name] = p.grad.detach().clone()

    hp = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "max_grad_norm": 1.0, "steps": 10}
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": hp["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
    )
    losses, norms = [], []
    for _ in range(hp["steps"]):
        logits = model(ids)
        l = F.cross_entropy(logits.view(-1, c["vocab_size"]), targets.view(-1), ignore_index=-100)
        losses.append(l.item())
        opt.zero_grad()
        l.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), hp["max_grad_norm"]).item())
        opt.step()
    tensors["adamw_losses"] = torch.tensor(losses, dtype=torch.float32)
    tensors["adamw_grad_norms"] = torch.tensor(norms, dtype=torch.float32)
    meta = dict(hp)
    meta["weight_decay_rule"] = "2-D tensors decay, 1-D (RMSNorm) do not"
    meta["loss_before_each_step"] = "adamw_losses[i] is the loss with the weights after i updates"
    meta["torch"] = torch.__version__
    safetensors_io.save(os.path.join(d, "golden.safetensors"), tensors, {"hyper": json.dumps(meta)})
    print(f"golden: loss {loss.item():.6f}, adamw losses {[round(x, 4) for x in losses]}, grad norms {[round(x, 3) for x in norms]}")


def foreign(out, name, c, config_json, dtype, extra_buffer, seed):
    torch.manual_seed(0)
    model = LlamaForCausalLM(c)
    init_weights(model, seed)
    sd = state(model, dtype)
    # the logits PyTorch computes for this checkpoint: its stored weights, upcast to float32
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(sd["model.embed_tokens.weight" if (c["tie_word_embeddings"] and n == "lm_head.weight") else n].float())
    if extra_buffer:
        for i in range(c["num_hidden_layers"]):
            sd[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = 1.0 / (
                c["rope_theta"] ** (torch.arange(0, c["head_dim"], 2).float() / c["head_dim"])
            )
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config_json, f, indent=2)
    # HF writers sort tensor names; do the same so offsets do not follow our layout order
    safetensors_io.save(os.path.join(d, "model.safetensors"), dict(sorted(sd.items())), {"format": "pt"})
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, c["vocab_size"], (1, 10), generator=g, dtype=torch.int64)
    with torch.no_grad():
        logits = model(ids)
    safetensors_io.save(os.path.join(d, "expected.safetensors"), {"input_ids": ids.to(torch.int32), "logits": logits})
    print(f"{name}: {dtype}, tied={c['tie_word_embeddings']}, logits[0,0,:3]={logits[0, 0, :3].tolist()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "model"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    golden(a.out)
    # F16, untied; config.json leaves num_key_value_heads, head_dim, rms_norm_eps, rope_theta, tie_word_embeddings
    # out, so their Hugging Face defaults apply (KV heads = heads, head_dim = hidden / heads, 1e-6, 10000, false)
    c16 = {
        "hidden_size": 32, "intermediate_size": 80, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "head_dim": 8, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "vocab_size": 80, "max_position_embeddings": 32, "tie_word_embeddings": False,
    }
    cfg16 = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32, "intermediate_size": 80,
             "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 80, "max_position_embeddings": 32,
             "torch_dtype": "float16", "transformers_version": "4.40.0", "use_cache": True}
    foreign(a.out, "hf-f16", c16, cfg16, torch.float16, True, 7)
    # BF16, tied, multi-query attention (1 KV head), theta 500000 as Llama 3
    cbf = {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
        "num_key_value_heads": 1, "head_dim": 8, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "vocab_size": 72, "max_position_embeddings": 32, "tie_word_embeddings": True,
    }
    cfgbf = full_config(cbf)
    cfgbf["torch_dtype"] = "bfloat16"
    del cfgbf["head_dim"]
    foreign(a.out, "hf-bf16-tied", cbf, cfgbf, torch.bfloat16, False, 11)


if __name__ == "__main__":
    main()
