package tokenizer

import (
	"fmt"
	"slices"
	"testing"
)

// encoderUnderTest is the API shape both implementations share (the pure-Go
// Tokenizer and, with -tags hftokenizers, the cgo HFTokenizer).
type encoderUnderTest interface {
	Encode(text string, o EncodeOptions) []uint32
	EncodeBatch(texts []string, o EncodeOptions) [][]uint32
	Decode(ids []uint32, skipSpecial bool) string
	VocabSize() int
}

// implementations lists how to open each family's file; hf_cgo_test.go adds
// the cgo one.
var implementations = []struct {
	name string
	open func(t testing.TB, f family) encoderUnderTest
}{
	{"go", func(t testing.TB, f family) encoderUnderTest { return loadFamily(t, f) }},
}

// TestParity compares every family against the goldens made by the npm
// oracle (oracle/goldens.js): ids with and without special tokens, ids with
// special tokens left as text, decode with and without skipping special
// tokens. Any mismatch fails.
func TestParity(t *testing.T) {
	corpus := loadCorpus(t)
	if len(corpus) < 5000 {
		t.Fatalf("corpus has %d strings, want >= 5000", len(corpus))
	}
	for _, impl := range implementations {
		for _, f := range loadFamilies(t) {
			t.Run(impl.name+"/"+f.Name, func(t *testing.T) {
				tk := impl.open(t, f)
				gold := loadGoldens(t, f.Name)
				if len(gold) != len(corpus) {
					t.Fatalf("%d goldens for %d corpus strings; rerun oracle/goldens.js", len(gold), len(corpus))
				}
				encode := tk.EncodeBatch
				if f.Padded {
					// Batches pad to their longest member; goldens are single encodes.
					encode = func(texts []string, o EncodeOptions) [][]uint32 {
						out := make([][]uint32, len(texts))
						for i, s := range texts {
							out[i] = tk.Encode(s, o)
						}
						return out
					}
				}
				plain := encode(corpus, EncodeOptions{SplitSpecial: true})
				special := encode(corpus, EncodeOptions{AddSpecialTokens: true, SplitSpecial: true})
				text := encode(corpus, EncodeOptions{})
				var bad []string
				report := func(i int, what string, got, want any) {
					if len(bad) < 15 {
						bad = append(bad, fmt.Sprintf("#%d %q %s:\n  got  %v\n  want %v", i, trunc(corpus[i]), what, got, want))
					} else if len(bad) == 15 {
						bad = append(bad, "...")
					}
				}
				mismatches := 0
				for i, g := range gold {
					ok := true
					if !slices.Equal(plain[i], g.IDs) {
						report(i, "ids", plain[i], g.IDs)
						ok = false
					}
					if !slices.Equal(special[i], g.IDsSpecial) {
						report(i, "ids_special", special[i], g.IDsSpecial)
						ok = false
					}
					if !slices.Equal(text[i], g.IDsText) {
						report(i, "ids_text (SplitSpecial=false)", text[i], g.IDsText)
						ok = false
					}
					if d := tk.Decode(g.IDsSpecial, false); d != g.Decode {
						report(i, "decode", fmt.Sprintf("%q", d), fmt.Sprintf("%q", g.Decode))
						ok = false
					}
					if d := tk.Decode(g.IDsSpecial, true); d != g.DecodeSkip {
						report(i, "decode skip special", fmt.Sprintf("%q", d), fmt.Sprintf("%q", g.DecodeSkip))
						ok = false
					}
					if f.Lossless {
						if d := tk.Decode(plain[i], false); d != corpus[i] {
							report(i, "round trip", fmt.Sprintf("%q", d), fmt.Sprintf("%q", corpus[i]))
							ok = false
						}
					}
					if !ok {
						mismatches++
					}
				}
				if mismatches > 0 {
					t.Errorf("%s: %d of %d strings mismatch the oracle:\n%s", f.Name, mismatches, len(corpus), joinLines(bad))
				} else {
					t.Logf("%s: %d strings, 0 mismatches (ids, ids with special tokens, special-as-text, decode x2)", f.Name, len(corpus))
				}
			})
		}
	}
}

func trunc(s string) string {
	r := []rune(s)
	if len(r) > 60 {
		return string(r[:60]) + "…"
	}
	return s
}

func joinLines(s []string) string {
	out := ""
	for _, l := range s {
		out += l + "\n"
	}
	return out
}
