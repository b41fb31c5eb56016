#!/usr/bin/env python3
"""Compare our logits with a reference's on the model `gpucheck -mode export` wrote.

    compare_hf.py DIR [--reference transformers|torch] [--out FILE] [--tol 1e-3]

DIR holds hf/ (our Hugging Face export), ours.json (the prompts) and
ours_logits.f32 (our float32 logits after every prompt token, little endian).
The reference is the machine's own Hugging Face transformers
(AutoModelForCausalLM, float32; with DIR/adapter and peft installed, also the
adapter through PeftModel against DIR/ours_lora_logits.f32), or, where
transformers is not installed, "torch": a small Llama written here from the
Hugging Face definition (RMSNorm, RoPE with Llama 3 scaling, grouped-query
attention, SwiGLU), reading the safetensors file itself, and with DIR/adapter
adding each adapted projection's s·B·A·x from PEFT's files. Prints and appends
one JSON line of figures; exits 1 when the logits differ by more than --tol.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "F16": np.float16}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        if t["dtype"] == "BF16":
            raw = np.frombuffer(data[a:b], dtype=np.uint16).astype(np.uint32) << 16
            arr = raw.view(np.float32)
        else:
            arr = np.frombuffer(data[a:b], dtype=dtypes[t["dtype"]]).astype(np.float32)
        out[name] = torch.from_numpy(arr.reshape(t["shape"]).copy())
    return out


def load_weights(hf):
    idx = os.path.join(hf, "model.safetensors.index.json")
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    w = {}
    for f in files:
        w.update(read_safetensors(os.path.join(hf, f)))
    return w


def rope_inv_freq(cfg, hd):
    base = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    rs = cfg.get("rope_scaling") or {}
    if rs.get("rope_type", rs.get("type")) == "llama3":
        factor, lo, hi = rs["factor"], rs.get("low_freq_factor", 1.0), rs.get("high_freq_factor", 4.0)
        old = rs["original_max_position_embeddings"]
        lo_wl, hi_wl = old / lo, old / hi
        wl = 2 * math.pi / inv
        scaled = torch.where(wl > lo_wl, inv / factor, inv)
        smooth = (old / wl - lo) / (hi - lo)
        mid = (1 - smooth) * scaled / factor + smooth * scaled
        is_mid = (wl >= hi_wl) & (wl <= lo_wl)
        inv = torch.where(is_mid, mid, scaled)
    return inv


def read_adapter(adapter):
    """A PEFT LoRA adapter: its factors by module name and its scale."""
    ac = json.load(open(os.path.join(adapter, "adapter_config.json")))
    r, alpha = ac["r"], ac["lora_alpha"]
    scale = alpha / math.sqrt(r) if ac.get("use_rslora") else alpha / r
    t = {k: v.double() for k, v in read_safetensors(os.path.join(adapter, "adapter_model.safetensors")).items()}
    pre = "base_model.model."
    mods = {}
    for k in t:
        if k.endswith(".lora_A.weight"):
            m = k[len(pre):-len(".lora_A.weight")]
            mods[m] = (t[k], t[pre + m + ".lora_B.weight"])
    full = {k[len(pre):]: v for k, v in t.items() if ".lora_" not in k}
    return mods, scale, full


def torch_llama_logits(hf, prompts, adapter=None):
    """A Llama forward pass from the Hugging Face definition, in float64;
    with a PEFT LoRA adapter, each adapted projection adds s·B·A·x."""
    cfg = json.load(open(os.path.join(hf, "config.json")))
    w = {k: v.double() for k, v in load_weights(hf).items()}
    mods, scale = {}, 0.0
    if adapter:
        mods, scale, full = read_adapter(adapter)
        w.update(full)
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    hd = cfg.get("head_dim") or D // H
    eps = cfg["rms_norm_eps"]
    inv = rope_inv_freq(cfg, hd)

    def norm(x, g):
        return g * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))

    def rot(x, cos, sin):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat((-x2, x1), -1) * sin

    out = []
    for p in prompts:
        T = len(p)
        ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
        emb = torch.cat((ang, ang), -1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
        x = w["model.embed_tokens.weight"][torch.tensor(p)]
        mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
        for l in range(cfg["num_hidden_layers"]):
            pre = f"model.layers.{l}."
            h = norm(x, w[pre + "input_layernorm.weight"])
            def lin(n, v):
                y = v @ w[pre + n + ".weight"].T + (w[pre + n + ".bias"] if pre + n + ".bias" in w else 0)
                if pre + n in mods:
                    A, B = mods[pre + n]
                    y = y + scale * ((v @ A.T) @ B.T)
                return y

            q = rot(lin("self_attn.q_proj", h).view(T, H, hd), cos, sin)
            k = rot(lin("self_attn.k_proj", h).view(T, KV, hd), cos, sin)
            v = lin("self_attn.v_proj", h).view(T, KV, hd)
            k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
            att = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd) + mask
            o = torch.einsum("hqk,khd->qhd", att.softmax(-1), v).reshape(T, H * hd)
            x = x + lin("self_attn.o_proj", o)
            h = norm(x, w[pre + "post_attention_layernorm.weight"])
            g = lin("mlp.gate_proj", h)
            x = x + lin("mlp.down_proj", torch.nn.functional.silu(g) * lin("mlp.up_proj", h))
        x = norm(x, w["model.norm.weight"])
        head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
        out.append((x @ head.T).float())
    return out


def transformers_logits(hf, prompts, adapter=None):
    from transformers import AutoModelForCausalLM

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = AutoModelForCausalLM.from_pretrained(hf, torch_dtype=torch.float32).to(dev).eval()
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).to(dev).eval()
    out = []
    with torch.no_grad():
        for p in prompts:
            out.append(model(torch.tensor([p], device=dev)).logits[0].float().cpu())
    return out


def read_ours(d, name, prompts, vocab):
    raw = np.fromfile(os.path.join(d, name), dtype="<f4")
    out, off = [], 0
    for p in prompts:
        n = len(p) * vocab
        out.append(torch.from_numpy(raw[off:off + n].reshape(len(p), vocab).copy()))
        off += n
    if off != raw.size:
        sys.exit(f"compare_hf: {name} holds {raw.size} values, the prompts need {off}")
    return out


def compare(ours, ref):
    diff = max(float((a - b).abs().max()) for a, b in zip(ours, ref))
    scale = max(float(b.abs().max()) for b in ref)
    agree = sum(int((a.argmax(-1) == b.argmax(-1)).sum()) for a, b in zip(ours, ref))
    total = sum(a.shape[0] for a in ours)
    return {"max_abs_diff": diff, "max_abs_logit": scale, "argmax_agree": agree, "positions": total}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--reference", choices=["transformers", "torch"], default="transformers")
    ap.add_argument("--out")
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()
    meta = json.load(open(os.path.join(a.dir, "ours.json")))
    prompts, vocab = meta["prompts"], meta["vocab"]
    hf = os.path.join(a.dir, "hf")
    ours = read_ours(a.dir, "ours_logits.f32", prompts, vocab)
    if a.reference == "transformers":
        ref = transformers_logits(hf, prompts)
        import transformers

        version = transformers.__version__
    else:
        ref = torch_llama_logits(hf, prompts)
        version = torch.__version__
    fig = {"check": "hf_export", "reference": a.reference, "version": version, "tol": a.tol, **compare(ours, ref)}
    ok = fig["max_abs_diff"] <= a.tol
    adapter = os.path.join(a.dir, "adapter")
    if os.path.isdir(adapter) and os.path.exists(os.path.join(a.dir, "ours_lora_logits.f32")):
        if a.reference == "transformers":
            try:
                import peft  # noqa: F401

                ref_lora = transformers_logits(hf, prompts, adapter)
            except ImportError:
                ref_lora = None
                fig["lora"] = "skipped: peft is not installed"
        else:
            ref_lora = torch_llama_logits(hf, prompts, adapter)
        if ref_lora is not None:
            lora = compare(read_ours(a.dir, "ours_lora_logits.f32", prompts, vocab), ref_lora)
            fig["lora"] = lora
            ok = ok and lora["max_abs_diff"] <= a.tol
    fig["ok"] = ok
    line = json.dumps(fig)
    print(line)
    if a.out:
        with open(a.out, "a") as f:
            f.write(line + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
