package tokenizer

import (
	"crypto/sha256"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"testing"
)

// bigBPE is a character-level BPE file with every two- and three-letter
// token of a..z as a merge (18,252 merges), large enough to be cached.
func bigBPE(t *testing.T) []byte {
	t.Helper()
	vocab := map[string]int{}
	add := func(s string) {
		if _, ok := vocab[s]; !ok {
			vocab[s] = len(vocab)
		}
	}
	var merges [][2]string
	for a := 'a'; a <= 'z'; a++ {
		add(string(a))
	}
	for a := 'a'; a <= 'z'; a++ {
		for b := 'a'; b <= 'z'; b++ {
			merges = append(merges, [2]string{string(a), string(b)})
			add(string(a) + string(b))
		}
	}
	for a := 'a'; a <= 'z'; a++ {
		for b := 'a'; b <= 'z'; b++ {
			for c := 'a'; c <= 'z'; c++ {
				merges = append(merges, [2]string{string(a) + string(b), string(c)})
				add(string(a) + string(b) + string(c))
			}
		}
	}
	add("<unk>")
	data, err := json.Marshal(map[string]any{
		"pre_tokenizer": map[string]any{"type": "Whitespace"},
		"model":         map[string]any{"type": "BPE", "unk_token": "<unk>", "vocab": vocab, "merges": merges},
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestModelCache(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(CacheDirEnv, dir)
	data := bigBPE(t)
	sum := sha256.Sum256(data)
	if loadCachedModel(sum) != nil {
		t.Fatal("cache hit before any load")
	}
	first, err := FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	cached := loadCachedModel(sum)
	if cached == nil {
		t.Fatalf("no cache file in %s after loading a %d-merge BPE", dir, len(first.model.bpe.merges))
	}
	if !maps.Equal(cached.vocab, first.model.vocab) || !slices.Equal(cached.vocabR, first.model.vocabR) || !maps.Equal(cached.merges, first.model.bpe.merges) {
		t.Fatal("cached model differs from the parsed one")
	}
	second, err := FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{"hello world", "abcdefghijklmnopqrstuvwxyz zyx", "q", "Hello ÄÖ 12"}
	for _, s := range texts {
		if a, b := first.Encode(s, EncodeOptions{}), second.Encode(s, EncodeOptions{}); !slices.Equal(a, b) {
			t.Fatalf("%q: parsed %v, cached %v", s, a, b)
		}
	}
	if first.Hash() != second.Hash() {
		t.Fatal("hash differs")
	}

	// A damaged file is ignored (and replaced by the next load).
	p := cachePath(sum)
	raw, _ := os.ReadFile(p)
	raw[len(raw)/2] ^= 0xff
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if loadCachedModel(sum) != nil {
		t.Fatal("damaged cache file accepted")
	}
	third, err := FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := first.Encode(texts[1], EncodeOptions{}), third.Encode(texts[1], EncodeOptions{}); !slices.Equal(a, b) {
		t.Fatalf("after damage: %v vs %v", a, b)
	}
	if loadCachedModel(sum) == nil {
		t.Fatal("damaged cache file not rewritten")
	}

	// Small models are not cached; "off" disables the cache.
	if _, err := FromBytes([]byte(fuzzSeeds[0])); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d cache files, want 1 (small models are not cached)", len(ents))
	}
	t.Setenv(CacheDirEnv, "off")
	if loadCachedModel(sum) != nil || cachePath(sum) != "" {
		t.Fatal("cache used while off")
	}
	if _, err := FromBytes(data); err != nil {
		t.Fatal(err)
	}
}

// TestLoadFamiliesCached: the large byte-level and SentencePiece-style BPE
// families encode the parity corpus the same when their model comes from
// the cache.
func TestLoadFamiliesCached(t *testing.T) {
	t.Setenv(CacheDirEnv, t.TempDir())
	corpus := loadCorpus(t)[:200]
	for _, f := range loadFamilies(t) {
		if f.Name != "llama3" && f.Name != "qwen3" && f.Name != "llama2" {
			continue
		}
		p, err := familyFileIfPresent(f)
		if err != nil {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		a, err := FromBytes(data) // parses, writes the cache
		if err != nil {
			t.Fatal(err)
		}
		b, err := FromBytes(data) // from the cache where the model is large
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range corpus {
			o := EncodeOptions{AddSpecialTokens: true, SplitSpecial: true}
			if x, y := a.Encode(s, o), b.Encode(s, o); !slices.Equal(x, y) {
				t.Fatalf("%s %q: parsed %v, cached %v", f.Name, s, x, y)
			}
		}
	}
}
