// unicode_tables.js asks the oracle (Hugging Face tokenizers, Rust) how it
// classifies every code point, where its Unicode tables are older than Go's
// or differ from them, and writes ../unicode_hf.go: the sets Go code needs to
// behave as the Rust library does.
//
//   node unicode_tables.js > ../unicode_hf.go && gofmt -w ../unicode_hf.go
//
// Sets (each a list of code point ranges):
//   hfPunct      BertPreTokenizer / Punctuation: punctuation (non-ASCII part)
//   hfMn         BertNormalizer strip_accents: what it removes after NFD (its
//                non-spacing marks)
//   hfMark       StripAccents: the combining marks it removes
//   hfControl    BertNormalizer clean_text: the characters it drops
//   hfBertSpace  BertNormalizer clean_text: the characters it turns into ' '
//   hfNormStale  code points whose decomposition or combining class Go's
//                norm tables know and the oracle's do not (NFC/NFD/NFKC/NFKD
//                leave them alone, so Go treats them as inert starters)
//   hfLetter, hfNumber, hfSpace  the regex classes \p{L}, \p{N}, \s as the
//                oracle's regex engine (Oniguruma) matches them
//   hfLower      char::to_lowercase where it differs from Go's (pairs)
//   hfCat        per general category X: \p{X} as the oracle's regex engine
//                matches it (the Go side keeps what Go's tables lack, for
//                regexes run by regexp2)
'use strict';
const t = require('tokenizers');

const bertPre = t.bertPreTokenizer();
const strip = t.stripAccentsNormalizer();
const bertStrip = t.bertNormalizer({ cleanText: false, handleChineseChars: false, stripAccents: true, lowercase: false });
const clean = t.bertNormalizer({ cleanText: true, handleChineseChars: false, stripAccents: false, lowercase: false });
const nfd = t.nfdNormalizer();
const nfkd = t.nfkdNormalizer();
const nfc = t.nfcNormalizer();
const lower = t.lowercase();
const isolate = (re) => t.Tokenizer.fromString(JSON.stringify({
  model: { type: 'WordLevel', vocab: { x: 0 }, unk_token: 'x' },
  pre_tokenizer: { type: 'Split', pattern: { Regex: re }, behavior: 'Isolated', invert: false },
})).getPreTokenizer();
const letter = isolate('\\p{L}');
const number = isolate('\\p{N}');
const space = isolate('\\s');

const sets = { hfPunct: [], hfMn: [], hfMark: [], hfControl: [], hfBertSpace: [], hfNormStale: [], hfLetter: [], hfNumber: [], hfSpace: [] };
const lowerPairs = [];
const cats = ['L', 'Lu', 'Ll', 'Lt', 'Lm', 'Lo', 'M', 'Mn', 'Mc', 'Me', 'N', 'Nd', 'Nl', 'No',
  'P', 'Pc', 'Pd', 'Ps', 'Pe', 'Pi', 'Pf', 'Po', 'S', 'Sm', 'Sc', 'Sk', 'So', 'Z', 'Zs', 'Zl', 'Zp'];
const catPT = cats.map((c) => isolate('\\p{' + c + '}'));
const catSets = cats.map(() => []);

// matches reports whether the pre-tokenizer's regex matched c alone: with
// Isolated, "xcx" splits into three pieces exactly when c matches (x is a
// character no class here contains).
const probe = '\u0000';
function matches(pt, c) {
  return pt.preTokenizeString(probe + c + probe).length === 3;
}

for (let cp = 0; cp <= 0x10ffff; cp++) {
  if (cp >= 0xd800 && cp <= 0xdfff) continue;
  const c = String.fromCodePoint(cp);
  if (cp >= 0x80) {
    // "a" c "a": punctuation is isolated (three pieces); whitespace splits
    // into two.
    if (bertPre.preTokenizeString('a' + c + 'a').length === 3) sets.hfPunct.push(cp);
  }
  if (bertStrip.normalizeString(c) === '') sets.hfMn.push(cp);
  if (strip.normalizeString(c) === '') sets.hfMark.push(cp);
  const cl = clean.normalizeString(c);
  if (cl === '') sets.hfControl.push(cp);
  else if (cl === ' ' && c !== ' ') sets.hfBertSpace.push(cp);
  // Decomposition known to the oracle: NFD or NFKD changes c. Combining
  // class known: canonical ordering moves c (if its class is below 230) in
  // front of U+0301, or U+0334 (class 1) in front of c.
  const d = nfd.normalizeString(c) !== c || nfkd.normalizeString(c) !== c;
  const o1 = nfd.normalizeString('a\u0301' + c) !== 'a\u0301' + c;
  const o2 = nfd.normalizeString('a' + c + '\u0334') !== 'a' + c + '\u0334';
  const composes = nfc.normalizeString(c) !== c;
  sets.hfNormStale.push({ cp, known: d || o1 || o2 || composes });
  if (matches(letter, c)) sets.hfLetter.push(cp);
  if (matches(number, c)) sets.hfNumber.push(cp);
  if (matches(space, c)) sets.hfSpace.push(cp);
  for (let i = 0; i < cats.length; i++) if (matches(catPT[i], c)) catSets[i].push(cp);
  const lc = lower.normalizeString(c);
  if (lc !== c) lowerPairs.push([cp, lc]);
}

// hfNormStale is finished by the Go side (it knows Go's tables): print the
// code points the oracle's normalizer treats as known.
sets.hfNormKnown = sets.hfNormStale.filter((x) => x.known).map((x) => x.cp);
delete sets.hfNormStale;

function ranges(cps) {
  const out = [];
  for (const cp of cps) {
    const last = out[out.length - 1];
    if (last && last[1] === cp - 1) last[1] = cp;
    else out.push([cp, cp]);
  }
  return out;
}

const json = {};
for (const [k, v] of Object.entries(sets)) json[k] = ranges(v);
json.hfLower = lowerPairs;
json.hfCat = {};
cats.forEach((c, i) => { json.hfCat[c] = ranges(catSets[i]); });
process.stdout.write(JSON.stringify(json) + '\n');
