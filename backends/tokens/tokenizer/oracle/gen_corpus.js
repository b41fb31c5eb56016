// gen_corpus.js writes ../testdata/corpus.jsonl.gz: the parity corpus, one
// JSON string per line, generated deterministically (fixed seed). It needs the
// oracle installed because one section is the 588 Llama 3 words that only
// ignore_merges produces (found by encoding every vocabulary entry's text with
// ignore_merges on and off).
//
//   node gen_corpus.js            # then: node goldens.js
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { Tokenizer } = require('tokenizers');
const { families } = require('./families');

function mulberry32(a) {
  return function () {
    a |= 0; a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = mulberry32(20240606);
const int = (n) => Math.floor(rnd() * n);
const pick = (a) => a[int(a.length)];
const rep = (s, n) => s.repeat(n);

const spaces = [' ', '\t', '\n', '\r', '\r\n', '\v', '\f', '\u00a0', '\u3000', '\u2028', '\u2029', '\u1680', '\u2000', '\u2003',
  '\u2007', '\u2009', '\u200a', '\u202f', '\u205f', '\u0085', '\u200b', '\ufeff', '  ', '\n\n', ' \n', '\t\t'];
const words = ['the', 'The', 'THE', 'hello', 'world', 'Hello', 'tokenizer', 'llama', 'Marin', 'don\'t', 'it\'s', 'I\'LL',
  'we\'re', 'they\'VE', 'she\'d', 'I\'m', 'café', 'naïve', 'résumé', 'Straße', 'ﬁnance', 'İstanbul', 'ǅemal', 'σοφία',
  'Ελλάδα', 'Москва', 'привет', 'мир', 'עברית', 'العربية', 'مرحبا', 'हिन्दी', 'नमस्ते', 'বাংলা', 'தமிழ்', 'ไทย',
  'ภาษาไทย', '日本語', 'こんにちは', 'カタカナ', '中文', '你好世界', '한국어', '안녕하세요', 'Tiếng', 'Việt', 'nhiều',
  'ğüşıöç', 'Ω', 'µ', 'ſ', 'ﬀ', 'ℌ', 'x²', 'H₂O', 'e\u0301', 'n\u0303', 'a\u0308\u0301', 'Z\u0351\u0352\u0357\u0315',
  '\u1100\u1161\u11a8', 'क्षि', 'ᄀᄁ'];
const digits = ['0', '7', '42', '123', '1234', '12345', '1234567890', '3.14159', '1,000,000', '2024-06-06', '٠١٢٣٤',
  '۱۲۳', '०१२३', '০১২', '๐๑๒๓', '０１２３', '²³', '①②', 'Ⅻ', 'ⅷ', '𝟘𝟙𝟚', '¼½', '٣.٥', '೧೨', '၁၂'];
const emoji = ['😀', '👍', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷', '🇯🇵', '❤️', '☺︎', '🧑🏿‍💻', '👩‍❤️‍💋‍👨', '🦙', '🤗', '#️⃣', '🫠', '©', '™'];
const punct = ['.', ',', '!', '?', '...', '—', '–', '-', '(', ')', '[', ']', '{', '}', '"', '\'', '`', '«', '»', '“', '”', '‘',
  '’', ';', ':', '/', '\\', '@', '#', '$', '%', '^', '&', '*', '+', '=', '<', '>', '|', '~', '_', '¿', '¡', '。', '、', '，', '！'];
const specials = ['<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>',
  '<|eot_id', '<|eot', 'eot_id|>', '<|', '|>', '<s>', '</s>', '<s', 's>', '<unk>', '[INST]', '[/INST]', '[INST', '<|im_start|>',
  '<|im_end|>', '<|im_start', '<|endoftext|>', '<|endoftext', '[CLS]', '[SEP]', '[MASK]', '[PAD]', '[UNK]', '<think>', '</think>',
  '<BOS_TOKEN>', '<|reserved_special_token_5|>', 'marinword', '<<s>>', '<s><s>', '</s></s>'];
const code = [
  'def f(x):\n    return x + 1\n',
  'func main() {\n\tfmt.Println("hi")\n}\n',
  'for (let i = 0; i < n; i++) {\n  sum += a[i];\n}',
  '{"key": "value", "n": [1, 2, 3], "nested": {"a": null}}',
  'SELECT id, name FROM users WHERE age >= 18 ORDER BY name;',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); }',
  '    if x:\n        y = x ** 2  # square\n    else:\n        pass\n',
  '<div class="a">Hello &amp; <b>bye</b></div>',
  '$ ls -la | grep ".go" && echo $?\n',
  'x := map[string][]int{"a": {1, 2}}\n\n\n',
  'λx. x → y ≠ z ∀ε>0 ∃δ',
  'https://example.com/path?q=1&r=%20#frag',
  'user@example.org',
  'C:\\Program Files\\marin\\bin',
  '\t\t\treturn nil, fmt.Errorf("read %s: %w", p, err)\n',
];
const prose = [
  'The quick brown fox jumps over the lazy dog.',
  'Marin trains language models; it tokenizes chat data with loss masks.',
  'In 1969, Neil Armstrong said: "That\'s one small step for [a] man."',
  'Supervised fine-tuning (SFT) adapts a pretrained model to follow instructions.',
  'Please answer in JSON. Don\'t include any explanations!',
  'Der schnelle braune Fuchs springt über den faulen Hund.',
  'Le cœur a ses raisons que la raison ne connaît point.',
  'Быстрая коричневая лиса перепрыгивает через ленивую собаку.',
  '我们今天学习自然语言处理。模型需要大量的数据。',
  '東京は日本の首都です。「ありがとう」と言いました。',
  '인공지능은 빠르게 발전하고 있습니다.',
  'Tôi đang học tiếng Việt và điều này rất thú vị.',
  'Bugün hava çok güzel, değil mi? Çalışmaktan yoruldum.',
  'यह एक परीक्षण वाक्य है।',
  'هذا نص تجريبي باللغة العربية.',
];

const out = [];
const add = (s) => out.push(s);

// Fixed edge cases.
['', ' ', '  ', '\n', '\n\n', '\t', 'a', 'A', '\'', '\'s', '\'S', '\'ſ', '\'LL', ' \'s', '0', ' 0', '  0', '00000', 'ab\'sc',
  ' hello', 'hello ', ' hello ', '   hello   world   ', 'hello\n', '\nhello', 'a\r\nb', 'a \r\n b', '\u00a0', '\u3000\u3000',
  '\u2028', 'x\u2028y', 'x\u00a0y', 'x \u00a0 y', '😀', ' 😀', '😀😀😀', '\u0000', 'a\u0000b', '\u0301', 'e\u0301', '\u00e9',
  'Ａ', 'ﬁ', '²', '\u200d', '\u200b', 'x\u200by', '\ufffd', '\u{10ffff}', '\u{e000}', '\u{1f600}\u200d'].forEach(add);
for (let n = 1; n <= 40; n++) { add(rep(' ', n)); add('a' + rep(' ', n) + 'b'); add(rep('\n', n % 7 + 1) + rep(' ', n)); }
for (const n of [64, 100, 128, 255, 256, 300, 1000]) { add(rep(' ', n)); add(rep('\t', n)); add(rep('a', n)); add(rep('=', n)); add(rep('1', n)); add(rep('ab', n)); }
add(rep('\n', 200)); add(rep(' \n', 100)); add(rep('\u00a0', 50)); add(rep('\u3000', 50)); add(rep('😀', 60));
for (const s of specials) { add(s); add('x' + s + 'y'); add(' ' + s + ' '); add('hello ' + s + ' world'); add(s + s); add(s + '\n' + s); }
for (const w of words) { add(w); add(' ' + w); add(w.toUpperCase()); }
for (const d of digits) { add(d); add(' ' + d); add('x' + d + 'y'); }
for (const e of emoji) { add(e); add(' ' + e); add('a' + e + 'b'); }
for (const s of spaces) { add(s); add('a' + s + 'b'); add('a' + s + s + 'b'); add(s + 'a' + s); add('a' + s + '!'); add('a' + s + '1'); }
for (const c of code) { add(c); }
for (const p of prose) { add(p); add(p.toLowerCase()); add(p.toUpperCase()); }

// The 588 Llama 3 words that only ignore_merges produces.
function ignoreMergesWords() {
  const fam = families().find((f) => f.name === 'llama3');
  const s = fs.readFileSync(fam.file, 'utf8');
  const j = JSON.parse(s);
  j.model.ignore_merges = false;
  const plain = Tokenizer.fromString(JSON.stringify(j));
  const real = Tokenizer.fromString(s);
  const bs = []; for (let i = 33; i <= 126; i++) bs.push(i); for (let i = 161; i <= 172; i++) bs.push(i); for (let i = 174; i <= 255; i++) bs.push(i);
  const cs = bs.slice(); let n = 0; for (let i = 0; i < 256; i++) if (!bs.includes(i)) { bs.push(i); cs.push(256 + n); n++; }
  const dec = new Map(); bs.forEach((b, i) => dec.set(String.fromCodePoint(cs[i]), b));
  const td = new TextDecoder('utf-8', { fatal: true });
  const texts = [];
  for (const t of Object.keys(j.model.vocab)) {
    try { texts.push(td.decode(Uint8Array.from([...t].map((c) => dec.get(c))))); } catch (e) { /* not UTF-8 alone */ }
  }
  return Promise.all([real.encodeBatch(texts, { addSpecialTokens: false }), plain.encodeBatch(texts, { addSpecialTokens: false })]).then(([a, b]) =>
    texts.filter((_, i) => a[i].getIds().join() !== b[i].getIds().join()));
}

function randomMix(len) {
  const pools = [words, digits, emoji, punct, spaces, specials, ['\n', ' ', ' ', ' '], words, words];
  let s = '';
  for (let i = 0; i < len; i++) {
    s += pick(pick(pools));
    if (rnd() < 0.5) s += ' ';
  }
  return s;
}

function randomChars(len) {
  // Code points from assorted blocks, including combining marks and astral planes.
  const ranges = [[0x20, 0x7e], [0xa0, 0x17f], [0x300, 0x36f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x6ff], [0x900, 0x97f],
    [0xe00, 0xe7f], [0x1100, 0x11ff], [0x2000, 0x206f], [0x2190, 0x22ff], [0x3000, 0x30ff], [0x4e00, 0x4fff], [0xac00, 0xad00],
    [0xff00, 0xffef], [0x1f300, 0x1f64f], [0x1f900, 0x1f9ff], [0x1d400, 0x1d4ff], [0x9, 0xd]];
  let s = '';
  for (let i = 0; i < len; i++) { const [a, b] = pick(ranges); s += String.fromCodePoint(a + int(b - a + 1)); }
  return s;
}

(async () => {
  const im = await ignoreMergesWords();
  if (im.length !== 588) throw new Error('expected 588 ignore_merges words, got ' + im.length);
  im.forEach((w, i) => { add(w); if (i % 3 === 0) add('Xin chào,' + w + ' và' + w + '.'); });
  add(im.join(''));
  add(im.join(' '));
  for (let i = 0; i < 1800; i++) add(randomMix(1 + int(30)));
  for (let i = 0; i < 1000; i++) add(randomChars(1 + int(40)));
  for (let i = 0; i < 400; i++) {
    // Documents: prose, code and whitespace runs glued together.
    let s = '';
    const parts = 2 + int(8);
    for (let k = 0; k < parts; k++) {
      const r = int(6);
      if (r === 0) s += pick(prose); else if (r === 1) s += pick(code); else if (r === 2) s += rep(pick(spaces), 1 + int(20));
      else if (r === 3) s += pick(specials); else if (r === 4) s += pick(im); else s += randomMix(5);
    }
    add(s);
  }
  for (let i = 0; i < 300; i++) add(pick(words) + rep(pick([' ', '\n', '\t', '\u00a0', '\u3000', ' \n']), 1 + int(12)) + pick(words.concat(digits, punct, emoji)));
  // The differential fuzzer's finds (oracle_fuzz_test.go), each shrunk to
  // the smallest text that differed, then a fix.
  const finds = path.join(__dirname, '..', 'testdata', 'oracle_finds.jsonl');
  for (const l of fs.readFileSync(finds, 'utf8').split('\n')) if (l.length > 0) add(JSON.parse(l));
  const file = path.join(__dirname, '..', 'testdata', 'corpus.jsonl.gz');
  fs.writeFileSync(file, zlib.gzipSync(out.map((s) => JSON.stringify(s)).join('\n') + '\n', { level: 9 }));
  console.log(`${out.length} strings written to ${file}`);
})().catch((e) => { console.error(e); process.exit(1); });
