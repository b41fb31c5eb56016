#!/usr/bin/env python3
"""Writes tiny/tokenizer.json and tiny/tokenizer_config.json: a WordLevel
tokenizer (Whitespace pre-tokenizer) over the words the tokenize tests and
benchmark generate, with Llama 3's control tokens as special added tokens, so
the tests run through the real tokenizer package in milliseconds.

    python3 make_tiny_tokenizer.py
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
# Keep in sync with words in tokenize_test.go.
WORDS = """the of and to a in is it you that he was for on are with as I his they be at one have this from
or had by hot word but what some we can out other were all there when up use your how said an each she
which do their time if will way about many then them write would like so these her long make thing see him
two has look more day could go come did number sound no most people my over know water than call first who
may down side been now find any new work part take get place made live where after back little only round
man year came show every good me give our under name very through just form sentence great think say help
low line differ turn cause much mean before move right boy old too same tell does set three want air well
also play small end put home read hand port large spell add even land here must big high such follow act
why ask men change went light kind off need house picture try us again animal point mother world near build
self earth father head stand own page should country found answer school grow study still learn plant cover
food sun four between state keep eye never last let thought city tree cross farm hard start might story saw
far sea draw left late run while press close night real life few north system user assistant Cutting
Knowledge Date December 2023 Today Jul 2024 26 ipython hello world USER ASSISTANT chat between curious
artificial intelligence gives helpful detailed polite answers questions""".split()
PUNCT = [".", ",", "?", "!", ":", "'", "<|", "|>", "<", ">", "|", "_"]
SPECIALS = ["<s>", "</s>", "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>"]


def main():
    vocab = {"[UNK]": 0}
    for w in WORDS + PUNCT:
        if w not in vocab:
            vocab[w] = len(vocab)
    added = [{"id": 0, "content": "[UNK]", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}]
    for s in SPECIALS:
        vocab_id = len(vocab)
        vocab[s] = vocab_id
        added.append({"id": vocab_id, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True})
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
    }
    os.makedirs(os.path.join(HERE, "tiny"), exist_ok=True)
    with open(os.path.join(HERE, "tiny", "tokenizer.json"), "w") as f:
        json.dump(tok, f, indent=1)
        f.write("\n")
    with open(os.path.join(HERE, "tiny", "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
