// serve.js is the oracle side of the differential fuzzer
// (../oracle_fuzz_test.go): it loads tokenizer.json files named on the command
// line with Hugging Face tokenizers (npm tokenizers@0.23.2, the Rust library),
// then reads one JSON request a line from stdin and answers one JSON line on
// stdout:
//
//   request  {"texts": ["...", ...]}
//   answer   [[{"ids": [...], "ids_special": [...], "decode": "..."}, ...  one per text
//             ], ...                                                      one per file, in order
//
// ids: encode(addSpecialTokens false); ids_special: encode(addSpecialTokens
// true); decode: decode(ids_special, skipSpecialTokens false). A file that
// configures padding is encoded text by text (encodeBatch would pad).
//
//   node serve.js FILE.json [FILE.json ...]
'use strict';
const fs = require('fs');
const readline = require('readline');
const { Tokenizer } = require('tokenizers');

const toks = process.argv.slice(2).map((file) => {
  const src = fs.readFileSync(file, 'utf8');
  return { tk: Tokenizer.fromString(src), padded: JSON.parse(src).padding != null };
});

async function encodeAll(t, texts, opts) {
  if (t.padded) return Promise.all(texts.map((s) => t.tk.encode(s, null, opts)));
  return t.tk.encodeBatch(texts, opts);
}

async function answer(texts) {
  const out = [];
  for (const t of toks) {
    const plain = await encodeAll(t, texts, { addSpecialTokens: false });
    const special = await encodeAll(t, texts, { addSpecialTokens: true });
    const res = [];
    for (let i = 0; i < texts.length; i++) {
      const ids = special[i].getIds();
      res.push({ ids: plain[i].getIds(), ids_special: ids, decode: await t.tk.decode(ids, false) });
    }
    out.push(res);
  }
  return out;
}

(async () => {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (line.length === 0) continue;
    const req = JSON.parse(line);
    process.stdout.write(JSON.stringify(await answer(req.texts)) + '\n');
  }
})().catch((e) => { console.error(e); process.exit(1); });
