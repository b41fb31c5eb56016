"""An independent application of a PEFT LoRA adapter, for checking marin's:
it reads the base model and the adapter from their safetensors files
itself, merges every adapted projection as PEFT's merge_and_unload does for
float32 weights, W + s·B·A with s = lora_alpha/r (lora_alpha/sqrt(r) with
use_rslora), puts the adapter's fully trained tensors (modules_to_save,
biases) in place of the base's, and decodes greedily with the PyTorch Llama
of backends/eval/testdata/torch_llama.py (Hugging Face's modeling_llama.py
written out in float64).

    python3 torch_peft_generate.py BASE_DIR ADAPTER_DIR IN.json OUT.json

IN.json:  {"prompt_ids": [...], "max_new_tokens": N, "stop_ids": [...]}
OUT.json: {"ids": [...], "stopped": bool, "merged": number of merged projections}
"""
import json
import math
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "eval", "testdata"))
from torch_llama import forward  # noqa: E402


def read_safetensors(path):
    """Every tensor of a safetensors file as float32 (F32, BF16 or F16)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        raw = bytearray(data[lo:hi])
        dtype = info["dtype"]
        if dtype == "F32":
            t = torch.frombuffer(raw, dtype=torch.float32)
        elif dtype == "BF16":
            t = torch.frombuffer(raw, dtype=torch.bfloat16).to(torch.float32)
        elif dtype == "F16":
            t = torch.frombuffer(raw, dtype=torch.float16).to(torch.float32)
        else:
            raise SystemExit(f"{path}: {name} has dtype {dtype}")
        out[name] = t.reshape(info["shape"]).clone()
    return out


def read_model(d):
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    t = {}
    for f in files:
        t.update(read_safetensors(os.path.join(d, f)))
    return t


def merge(base, adapter, acfg):
    prefix = "base_model.model."
    r = acfg["r"]
    scale = acfg["lora_alpha"] / (math.sqrt(r) if acfg.get("use_rslora") else r)
    merged = 0
    for name, a in adapter.items():
        if not name.startswith(prefix):
            raise SystemExit(f"adapter tensor {name} lacks {prefix!r}")
        key = name[len(prefix):]
        if key.endswith(".lora_A.weight"):
            module = key[: -len(".lora_A.weight")]
            b = adapter[prefix + module + ".lora_B.weight"]
            w = base[module + ".weight"]
            base[module + ".weight"] = w + (b @ a) * scale
            merged += 1
        elif key.endswith(".lora_B.weight"):
            continue
        else:
            if key not in base:
                raise SystemExit(f"adapter tensor {name} replaces {key}, which the base lacks")
            base[key] = a
    return merged


def main():
    base_dir, adapter_dir, in_path, out_path = sys.argv[1:5]
    cfg = json.load(open(os.path.join(base_dir, "config.json")))
    acfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    if acfg.get("peft_type") != "LORA" or acfg.get("use_dora") or acfg.get("fan_in_fan_out"):
        raise SystemExit("not a plain LoRA adapter")
    base = read_model(base_dir)
    n = merge(base, read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors")), acfg)
    t = {k: v.to(torch.float64) for k, v in base.items()}
    req = json.load(open(in_path))
    ids = list(req["prompt_ids"])
    stop = set(req.get("stop_ids") or [])
    gen, stopped = [], False
    with torch.no_grad():
        for _ in range(req["max_new_tokens"]):
            nxt = int(forward(cfg, t, ids)[-1].argmax())
            if nxt in stop:
                stopped = True
                break
            gen.append(nxt)
            ids.append(nxt)
    json.dump({"ids": gen, "stopped": stopped, "merged": n, "torch": torch.__version__}, open(out_path, "w"))


if __name__ == "__main__":
    main()
