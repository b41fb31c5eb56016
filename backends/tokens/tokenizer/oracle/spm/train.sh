#!/bin/sh
# train.sh made the two SentencePiece Unigram models in this folder with
# Debian bookworm's sentencepiece 0.1.97 (apt-get install sentencepiece),
# trained on the translations of country, language, currency and script names
# that Debian's iso-codes 4.15.0 ships (about 100 languages, every major
# script; 92,195 lines, 1.9 MB). Both use SentencePiece's default nmt_nfkc
# normalization, so they carry its precompiled_charsmap. The .model files are
# committed (training needs the iso-codes translations installed and takes a
# minute); ../spm_convert.js turns them into tokenizer.json files.
#
#   iso-t5.model            8,000 pieces, T5's special ids (pad 0, eos 1, unk 2, no bos)
#   iso-bytefallback.model  6,000 pieces with byte_fallback (character_coverage
#                           0.98, so rare characters fall back to <0xXX> pieces)
#
#   sh train.sh   (from this folder)
set -eu
tmp=$(mktemp -d)
export LC_ALL=C
for f in /usr/share/locale/*/LC_MESSAGES/iso_3166-1.mo /usr/share/locale/*/LC_MESSAGES/iso_639-2.mo \
  /usr/share/locale/*/LC_MESSAGES/iso_4217.mo /usr/share/locale/*/LC_MESSAGES/iso_15924.mo; do
  msgunfmt --no-wrap "$f" 2>/dev/null | grep '^msgstr "' | sed 's/^msgstr "//; s/"$//' | grep -v '^$'
done > "$tmp/text.txt"
spm_train --input="$tmp/text.txt" --model_prefix="$tmp/iso-t5" --model_type=unigram --vocab_size=8000 \
  --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1 --num_threads=1
spm_train --input="$tmp/text.txt" --model_prefix="$tmp/iso-bytefallback" --model_type=unigram --vocab_size=6000 \
  --byte_fallback=true --character_coverage=0.98 --num_threads=1
cp "$tmp/iso-t5.model" "$tmp/iso-bytefallback.model" .
rm -r "$tmp"
