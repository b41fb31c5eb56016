// goldens.js runs the oracle (npm tokenizers, Hugging Face's Rust library) on
// ../testdata/corpus.jsonl.gz for every family in ../testdata/families.json and
// writes ../testdata/golden/FAMILY.jsonl.gz, one line per corpus string:
//
//   {"ids": [...]            encode, addSpecialTokens false
//    "ids_special": [...]    encode, addSpecialTokens true
//    "ids_text": [...]       encode with special added tokens not matched
//                            (HF encode_special_tokens=true; our SplitSpecial=false)
//    "decode": "..."         decode(ids_special, skipSpecialTokens=false)
//    "decode_skip": "..."}   decode(ids_special, skipSpecialTokens=true)
//
// The JS binding has no encode_special_tokens switch, so ids_text comes from a
// copy of the file whose special added tokens cannot match, which is what
// that switch does when matching added tokens.
//
//   node goldens.js [family ...]
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { Tokenizer } = require('tokenizers');
const { families } = require('./families');

const corpus = zlib.gunzipSync(fs.readFileSync(path.join(__dirname, '..', 'testdata', 'corpus.jsonl.gz')))
  .toString('utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));

(async () => {
  const want = process.argv.slice(2);
  const dir = path.join(__dirname, '..', 'testdata', 'golden');
  fs.mkdirSync(dir, { recursive: true });
  for (const fam of families()) {
    if (want.length > 0 && !want.includes(fam.name)) continue;
    const src = fs.readFileSync(fam.file, 'utf8');
    const tk = Tokenizer.fromString(src);
    const j = JSON.parse(src);
    // Special tokens the model's vocabulary holds can go; the others are
    // renamed to unmatchable text so the ids of later added tokens stay put.
    const vocab = j.model.vocab;
    const inModel = (c) => (Array.isArray(vocab) ? false : Object.prototype.hasOwnProperty.call(vocab, c));
    j.added_tokens = j.added_tokens
      .filter((t) => !(t.special && inModel(t.content)))
      .map((t, i) => (t.special ? { ...t, content: `\u0000\u0001unmatchable-${i}\u0001\u0000` } : t));
    const textOnly = Tokenizer.fromString(JSON.stringify(j));
    // encodeBatch pads across the batch when the file configures padding;
    // goldens are per string, so such files are encoded one by one.
    const batch = (tok, opts) => (j.padding
      ? Promise.all(corpus.map((s) => tok.encode(s, null, opts)))
      : tok.encodeBatch(corpus, opts));
    const plain = await batch(tk, { addSpecialTokens: false });
    const withSpecial = await batch(tk, { addSpecialTokens: true });
    const text = await batch(textOnly, { addSpecialTokens: false });
    const lines = [];
    for (let i = 0; i < corpus.length; i++) {
      const ids = withSpecial[i].getIds();
      lines.push(JSON.stringify({
        ids: plain[i].getIds(),
        ids_special: ids,
        ids_text: text[i].getIds(),
        decode: await tk.decode(ids, false),
        decode_skip: await tk.decode(ids, true),
      }));
    }
    const file = path.join(dir, fam.name + '.jsonl.gz');
    fs.writeFileSync(file, zlib.gzipSync(lines.join('\n') + '\n', { level: 9 }));
    console.log(`${fam.name}: ${corpus.length} goldens, vocab ${tk.getVocabSize(true)} -> ${file}`);
  }
})().catch((e) => { console.error(e); process.exit(1); });
