"""An independent Llama for checking marin's loglikelihoods: the Hugging Face
LlamaForCausalLM forward pass (modeling_llama.py: LlamaRMSNorm, rotate_half
RoPE, repeat_kv grouped-query attention, SwiGLU MLP, tied or untied head),
written out in PyTorch in float64.

    python3 torch_llama.py IN.json OUT.json

IN.json: {"config": HF config.json fields, "tensors": {name: {"shape", "data"}},
          "requests": [{"context": [ids], "continuations": [[ids], ...]}]}
OUT.json: {"results": [{"logprobs": [[...]], "greedy": [[...]]}]}, per
continuation token: log p(token | everything before it) and whether the token
is the argmax there.
"""
import json
import math
import sys

import torch


def load(inp):
    cfg = inp["config"]
    t = {k: torch.tensor(v["data"], dtype=torch.float64).reshape(v["shape"]) for k, v in inp["tensors"].items()}
    return cfg, t


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def forward(cfg, t, ids):
    d = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    hd = cfg.get("head_dim") or d // heads
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    n = len(ids)
    x = t["model.embed_tokens.weight"][torch.tensor(ids)]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    pos = torch.arange(n, dtype=torch.float64)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)

    def lin(h, name):
        y = h @ t[name + ".weight"].T
        if name + ".bias" in t:
            y = y + t[name + ".bias"]
        return y

    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, t[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.q_proj").view(n, heads, hd).transpose(0, 1)
        k = lin(h, p + "self_attn.k_proj").view(n, kv, hd).transpose(0, 1)
        v = lin(h, p + "self_attn.v_proj").view(n, kv, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = heads // kv
        k = k.repeat_interleave(rep, dim=0)
        v = v.repeat_interleave(rep, dim=0)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
        att = torch.softmax(att, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(n, heads * hd)
        x = x + lin(o, p + "self_attn.o_proj")
        h = rms_norm(x, t[p + "post_attention_layernorm.weight"], eps)
        g = lin(h, p + "mlp.gate_proj")
        u = lin(h, p + "mlp.up_proj")
        x = x + lin(torch.nn.functional.silu(g) * u, p + "mlp.down_proj")
    x = rms_norm(x, t["model.norm.weight"], eps)
    head = t.get("lm_head.weight", t["model.embed_tokens.weight"])
    return torch.log_softmax(x @ head.T, dim=-1)


def main():
    inp = json.load(open(sys.argv[1]))
    cfg, t = load(inp)
    out = []
    for r in inp["requests"]:
        res = {"logprobs": [], "greedy": []}
        for cont in r["continuations"]:
            ids = r["context"] + cont
            lp = forward(cfg, t, ids[:-1])
            c = len(r["context"])
            lps, gr = [], []
            for k, tok in enumerate(cont):
                row = lp[c - 1 + k]
                lps.append(float(row[tok]))
                gr.append(bool(int(row.argmax()) == tok))
            res["logprobs"].append(lps)
            res["greedy"].append(gr)
        out.append(res)
    json.dump({"torch": torch.__version__, "results": out}, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
