// spm_convert.js turns SentencePiece .model files (a ModelProto protobuf)
// into tokenizer.json files laid out as Hugging Face transformers'
// convert_slow_tokenizer.py lays out its Unigram conversions:
//
//   albert(proto)      AlbertConverter (do_lower_case, no keep_accents): the
//                      vocabulary with "N," pieces penalised by 100;
//                      Replace ``/'' -> ", NFKD, StripAccents, Lowercase,
//                      Precompiled, Replace / {2,}/ -> " "; Metaspace;
//                      [CLS] $A [SEP].
//   t5(proto, extra)   T5Converter: the pieces, then <extra_id_N> (N from
//                      extra-1 down to 0, score 0); Precompiled, Strip right,
//                      Replace / {2,}/ -> "▁"; Metaspace; $A </s>.
//   xlmr(proto)        XLMRobertaConverter: <s> <pad> </s> <unk> replace the
//                      first three pieces (fairseq ids), <mask> appended,
//                      unk_id 3; normalizer as T5's; Metaspace; <s> $A </s>.
//   generic(proto)     SpmConverter.build_tokenizer_from_spm_proto (a model
//                      with no converter class): Unigram with the model's
//                      byte_fallback; Precompiled, Replace " " -> "▁"; no
//                      pre-tokenizer; decoder Replace "▁" -> " ",
//                      ByteFallback, Fuse.
//
// Control (type 3) and user-defined (type 4) pieces become added tokens
// (normalized false; control ones special), as SpmConverter.tokenizer adds
// them, with the tokenizer class's own special tokens.
'use strict';

// readModel parses the parts of a ModelProto the converters read.
function readModel(buf) {
  let pos = 0;
  const varint = (b) => {
    let r = 0n; let s = 0n;
    for (;;) {
      const c = b[pos++];
      r |= BigInt(c & 0x7f) << s;
      s += 7n;
      if (c < 0x80) return r;
    }
  };
  const fields = (b) => {
    const out = [];
    const save = pos;
    pos = 0;
    while (pos < b.length) {
      const key = Number(varint(b));
      const f = key >> 3; const w = key & 7;
      if (w === 0) out.push([f, varint(b)]);
      else if (w === 1) { out.push([f, b.subarray(pos, pos + 8)]); pos += 8; }
      else if (w === 5) { out.push([f, b.subarray(pos, pos + 4)]); pos += 4; }
      else if (w === 2) { const n = Number(varint(b)); out.push([f, b.subarray(pos, pos + n)]); pos += n; }
      else throw new Error('unsupported wire type ' + w);
    }
    pos = save;
    return out;
  };
  const int32 = (v) => Number(BigInt.asIntN(32, v));
  const model = { pieces: [], trainer: { model_type: 1, unk_id: 0, byte_fallback: false }, charsmap: Buffer.alloc(0) };
  for (const [f, v] of fields(buf)) {
    if (f === 1) {
      const p = { piece: '', score: 0, type: 1 };
      for (const [pf, pv] of fields(v)) {
        if (pf === 1) p.piece = Buffer.from(pv).toString('utf8');
        else if (pf === 2) p.score = Buffer.from(pv).readFloatLE(0);
        else if (pf === 3) p.type = Number(pv);
      }
      model.pieces.push(p);
    } else if (f === 2) {
      for (const [tf, tv] of fields(v)) {
        if (tf === 3) model.trainer.model_type = Number(tv);
        else if (tf === 40) model.trainer.unk_id = int32(tv);
        else if (tf === 35) model.trainer.byte_fallback = tv !== 0n;
      }
    } else if (f === 3) {
      for (const [nf, nv] of fields(v)) if (nf === 2) model.charsmap = Buffer.from(nv);
    }
  }
  if (model.trainer.model_type !== 1) throw new Error('not a Unigram model (model_type ' + model.trainer.model_type + ')');
  return model;
}

const added = (id, content, special, extra = {}) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special, ...extra,
});
const metaspace = (type) => ({ type, replacement: '\u2581', prepend_scheme: 'always', split: true });
const precompiled = (m) => ({ type: 'Precompiled', precompiled_charsmap: m.charsmap.toString('base64') });
const template = (single, special) => ({
  type: 'TemplateProcessing',
  single: single.map((s) => (s === '$A' ? { Sequence: { id: 'A', type_id: 0 } } : { SpecialToken: { id: s, type_id: 0 } })),
  pair: [],
  special_tokens: Object.fromEntries(special.map(([tok, id]) => [tok, { id: tok, ids: [id], tokens: [tok] }])),
});
// spmAdded: control and user-defined pieces, in id order.
const spmAdded = (pieces) => pieces.map((p, id) => [p, id]).filter(([p]) => p.type === 3 || p.type === 4)
  .map(([p, id]) => added(id, p.piece, p.type === 3));
const unigram = (vocab, unkId, byteFallback) => ({ type: 'Unigram', unk_id: unkId, vocab, byte_fallback: byteFallback });
const file = (parts) => ({ version: '1.0', truncation: null, padding: null, ...parts });
const byContent = (list) => {
  const seen = new Map();
  for (const a of list) seen.set(a.content, { ...(seen.get(a.content) || {}), ...a });
  return [...seen.values()].sort((a, b) => a.id - b.id);
};

// isdigit approximates Python's str.isdigit for one character.
const isdigit = (c) => /^[\p{Nd}\u00b2\u00b3\u00b9\u2070-\u2079\u2080-\u2089\u2460-\u2468\u2474-\u247c\u2488-\u2490]$/u.test(c);
function checkNumberComma(piece) {
  const cs = Array.from(piece);
  return cs.length < 2 || cs[cs.length - 1] !== ',' || !isdigit(cs[cs.length - 2]);
}

function albert(m) {
  const vocab = m.pieces.map((p) => [p.piece, checkNumberComma(p.piece) ? p.score : p.score - 100]);
  const id = (t) => m.pieces.findIndex((p) => p.piece === t);
  const special = byContent([
    ...spmAdded(m.pieces),
    added(id('<unk>'), '<unk>', true),
    added(id('[MASK]'), '[MASK]', true, { lstrip: true }),
  ]);
  return file({
    added_tokens: special,
    normalizer: { type: 'Sequence', normalizers: [
      { type: 'Replace', pattern: { String: '``' }, content: '"' },
      { type: 'Replace', pattern: { String: "''" }, content: '"' },
      { type: 'NFKD' }, { type: 'StripAccents' }, { type: 'Lowercase' },
      precompiled(m),
      { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' },
    ] },
    pre_tokenizer: metaspace('Metaspace'),
    post_processor: template(['[CLS]', '$A', '[SEP]'], [['[CLS]', id('[CLS]')], ['[SEP]', id('[SEP]')]]),
    decoder: metaspace('Metaspace'),
    model: unigram(vocab, m.trainer.unk_id, false),
  });
}

const t5Normalizer = (m) => ({ type: 'Sequence', normalizers: [
  precompiled(m),
  { type: 'Strip', strip_left: false, strip_right: true },
  { type: 'Replace', pattern: { Regex: ' {2,}' }, content: '\u2581' },
] });

function t5(m, extraIds) {
  const vocab = m.pieces.map((p) => [p.piece, p.score]);
  for (let i = extraIds - 1; i >= 0; i--) vocab.push([`<extra_id_${i}>`, 0]);
  const id = (t) => vocab.findIndex((v) => v[0] === t);
  const special = byContent([
    ...spmAdded(m.pieces),
    added(id('<unk>'), '<unk>', true),
    ...vocab.slice(m.pieces.length).map(([t]) => added(id(t), t, true)),
  ]);
  return file({
    added_tokens: special,
    normalizer: t5Normalizer(m),
    pre_tokenizer: metaspace('Metaspace'),
    post_processor: template(['$A', '</s>'], [['</s>', id('</s>')]]),
    decoder: metaspace('Metaspace'),
    model: unigram(vocab, m.trainer.unk_id, false),
  });
}

function xlmr(m) {
  const vocab = [['<s>', 0], ['<pad>', 0], ['</s>', 0], ['<unk>', 0]];
  for (const p of m.pieces.slice(3)) vocab.push([p.piece, p.score]);
  vocab.push(['<mask>', 0]);
  const n = vocab.length;
  return file({
    added_tokens: [
      added(0, '<s>', true), added(1, '<pad>', true), added(2, '</s>', true), added(3, '<unk>', true),
      added(n - 1, '<mask>', true, { lstrip: true }),
    ],
    normalizer: t5Normalizer(m),
    pre_tokenizer: metaspace('Metaspace'),
    post_processor: template(['<s>', '$A', '</s>'], [['<s>', 0], ['</s>', 2]]),
    decoder: metaspace('Metaspace'),
    model: unigram(vocab, 3, false),
  });
}

function generic(m) {
  const vocab = m.pieces.map((p) => [p.piece, p.score]);
  const id = (t) => vocab.findIndex((v) => v[0] === t);
  return file({
    added_tokens: byContent([...spmAdded(m.pieces), added(id('<unk>'), '<unk>', true)]),
    normalizer: { type: 'Sequence', normalizers: [precompiled(m), { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Sequence', decoders: [
      { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
    ] },
    model: unigram(vocab, m.trainer.unk_id, m.trainer.byte_fallback),
  });
}

module.exports = { readModel, albert, t5, xlmr, generic };
