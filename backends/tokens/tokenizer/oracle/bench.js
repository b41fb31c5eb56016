// bench.js times the oracle's encodeBatch (Hugging Face tokenizers, Rust,
// all cores through rayon) on a JSON-lines file of documents and prints
// {"mbps", "seconds", "bytes", "tokens"} as one JSON line. A line is a JSON
// string or a {"text": ...} object (the input of marin tokenizer encode).
// BenchmarkOracleComparison and cmd/marin's BenchmarkEncodeCommand write
// the documents and call this.
//
//   node bench.js DOCS.jsonl TOKENIZER.json [batch]
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

(async () => {
  const [docsFile, tokFile, batchArg] = process.argv.slice(2);
  const docs = fs.readFileSync(docsFile, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l))
    .map((d) => (typeof d === 'string' ? d : d.text));
  const batch = Number(batchArg || 1024);
  const tk = Tokenizer.fromFile(tokFile);
  const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d, 'utf8'), 0);
  await tk.encodeBatch(docs.slice(0, 64), { addSpecialTokens: false }); // warm up
  let tokens = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < docs.length; i += batch) {
    const enc = await tk.encodeBatch(docs.slice(i, i + batch), { addSpecialTokens: false });
    for (const e of enc) tokens += e.getIds().length;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ mbps: bytes / 1e6 / seconds, seconds, bytes, tokens }));
})().catch((e) => { console.error(e); process.exit(1); });
