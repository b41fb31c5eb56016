//go:build hftokenizers

package tokenizer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	hf "github.com/daulet/tokenizers"
)

// HFTokenizer wraps Hugging Face's Rust tokenizers through cgo
// (github.com/daulet/tokenizers) behind the same API as Tokenizer. It is
// built only with -tags hftokenizers and links libtokenizers.a, which the
// user provides (CGO_LDFLAGS=-L<dir with libtokenizers.a>).
type HFTokenizer struct {
	split *hf.Tokenizer // added special tokens matched in the text (HF default)
	text  *hf.Tokenizer // encode_special_tokens: special tokens stay text
	hash  string
}

// HFFromFile loads a tokenizer.json with the Rust library.
func HFFromFile(path string) (*HFTokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	t, err := HFFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// HFFromBytes parses tokenizer.json contents with the Rust library.
func HFFromBytes(data []byte) (*HFTokenizer, error) {
	split, err := hf.FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("hf tokenizers: %w", err)
	}
	text, err := hf.FromBytes(data, hf.WithEncodeSpecialTokens())
	if err != nil {
		split.Close()
		return nil, fmt.Errorf("hf tokenizers: %w", err)
	}
	sum := sha256.Sum256(data)
	return &HFTokenizer{split: split, text: text, hash: hex.EncodeToString(sum[:])}, nil
}

// Close frees the Rust tokenizers.
func (t *HFTokenizer) Close() error {
	err1 := t.split.Close()
	err2 := t.text.Close()
	if err1 != nil {
		return err1
	}
	return err2
}

// Encode tokenizes text.
func (t *HFTokenizer) Encode(text string, o EncodeOptions) []uint32 {
	tk := t.text
	if o.SplitSpecial {
		tk = t.split
	}
	ids, _ := tk.Encode(text, o.AddSpecialTokens)
	return ids
}

// EncodeBatch encodes texts on all cores; the result keeps the input order.
func (t *HFTokenizer) EncodeBatch(texts []string, o EncodeOptions) [][]uint32 {
	out := make([][]uint32, len(texts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(texts) {
					return
				}
				out[i] = t.Encode(texts[i], o)
			}
		}()
	}
	wg.Wait()
	return out
}

// Decode turns ids back into text; skipSpecial drops special added tokens.
func (t *HFTokenizer) Decode(ids []uint32, skipSpecial bool) string {
	return t.split.Decode(ids, skipSpecial)
}

// VocabSize is the vocabulary size including added tokens.
func (t *HFTokenizer) VocabSize() int { return int(t.split.VocabSize()) }

// Hash is the sha256 hex digest of the tokenizer.json bytes.
func (t *HFTokenizer) Hash() string { return t.hash }
