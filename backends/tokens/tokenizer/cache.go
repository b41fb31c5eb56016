package tokenizer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The parsed-model cache. Parsing a large BPE vocabulary and its merges
// from JSON (Llama 3: 128k tokens, 280k merges) is most of a tokenizer's
// load time, so FromBytes and FromFile keep the parsed result in a binary
// file named by the SHA-256 of the tokenizer.json bytes: the next load of
// the same bytes, by any caller (the CLI, the tokenize op, training),
// rebuilds the tables from it instead. Entries are content-addressed, so a
// changed file simply misses; each carries the format version and a
// checksum, and anything unreadable is ignored and rewritten.

// CacheDirEnv names the cache directory; "off" disables the cache. The
// default is the user cache directory's marin/tokenizer-cache.
const CacheDirEnv = "MARIN_TOKENIZER_CACHE"

// cacheMinMerges is the size below which parsing is cheap enough that no
// cache file is written.
const cacheMinMerges = 1 << 14

const (
	cacheMagic   = "marin-tokenizer-cache\n"
	cacheVersion = 2
)

// cachedModel is what the cache holds: the vocabulary and the resolved
// merges of a BPE model, and the file with those two fields emptied
// (stripped), which is all a cached load parses as JSON.
type cachedModel struct {
	vocab    map[string]uint32
	vocabR   []string
	merges   map[uint64]uint64
	stripped []byte
}

// stripModel returns the tokenizer.json data with model.vocab and
// model.merges emptied.
func stripModel(data []byte) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, err
	}
	var model map[string]json.RawMessage
	if err := json.Unmarshal(top["model"], &model); err != nil {
		return nil, err
	}
	model["vocab"] = json.RawMessage("{}")
	model["merges"] = json.RawMessage("[]")
	m, err := json.Marshal(model)
	if err != nil {
		return nil, err
	}
	top["model"] = m
	return json.Marshal(top)
}

func cacheDir() string {
	d := os.Getenv(CacheDirEnv)
	if strings.EqualFold(d, "off") {
		return ""
	}
	if d == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		d = filepath.Join(base, "marin", "tokenizer-cache")
	}
	return d
}

func cachePath(sum [32]byte) string {
	d := cacheDir()
	if d == "" {
		return ""
	}
	return filepath.Join(d, fmt.Sprintf("%x.v%d.bin", sum, cacheVersion))
}

// loadCachedModel returns the cached model of the file with this hash, or
// nil.
func loadCachedModel(sum [32]byte) *cachedModel {
	p := cachePath(sum)
	if p == "" {
		return nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	m, err := decodeCachedModel(data, sum)
	if err != nil {
		os.Remove(p)
		return nil
	}
	return m
}

// storeCachedModel writes the model's cache file (atomically: temp then
// rename); failures only cost the next load its speed.
func storeCachedModel(sum [32]byte, data []byte, m *cachedModel) {
	p := cachePath(sum)
	if p == "" || len(m.merges) < cacheMinMerges {
		return
	}
	var err error
	if m.stripped, err = stripModel(data); err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return
	}
	_, err = f.Write(encodeCachedModel(m, sum))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

func encodeCachedModel(m *cachedModel, sum [32]byte) []byte {
	var b bytes.Buffer
	b.Grow(len(m.vocabR)*16 + len(m.merges)*16 + 128)
	b.WriteString(cacheMagic)
	var u [8]byte
	put32 := func(v uint32) { binary.LittleEndian.PutUint32(u[:4], v); b.Write(u[:4]) }
	put64 := func(v uint64) { binary.LittleEndian.PutUint64(u[:], v); b.Write(u[:]) }
	put32(cacheVersion)
	b.Write(sum[:])
	put32(uint32(len(m.stripped)))
	b.Write(m.stripped)
	put32(uint32(len(m.vocabR)))
	put32(uint32(len(m.vocab)))
	for tok, id := range m.vocab {
		put32(id)
		put32(uint32(len(tok)))
		b.WriteString(tok)
	}
	put32(uint32(len(m.merges)))
	for k, v := range m.merges {
		put64(k)
		put64(v)
	}
	check := sha256.Sum256(b.Bytes())
	b.Write(check[:])
	return b.Bytes()
}

var errCache = errors.New("tokenizer cache: bad file")

func decodeCachedModel(data []byte, sum [32]byte) (*cachedModel, error) {
	if len(data) < len(cacheMagic)+4+32+32 || string(data[:len(cacheMagic)]) != cacheMagic {
		return nil, errCache
	}
	body, check := data[:len(data)-32], data[len(data)-32:]
	if s := sha256.Sum256(body); !bytes.Equal(s[:], check) {
		return nil, errCache
	}
	d := body[len(cacheMagic):]
	get32 := func() (uint32, bool) {
		if len(d) < 4 {
			return 0, false
		}
		v := binary.LittleEndian.Uint32(d)
		d = d[4:]
		return v, true
	}
	if v, ok := get32(); !ok || v != cacheVersion || len(d) < 32 || !bytes.Equal(d[:32], sum[:]) {
		return nil, errCache
	}
	d = d[32:]
	ns, okS := get32()
	if !okS || uint64(ns) > uint64(len(d)) {
		return nil, errCache
	}
	stripped := d[:ns:ns]
	d = d[ns:]
	nR, ok1 := get32()
	nV, ok2 := get32()
	if !ok1 || !ok2 || uint64(nV)*8 > uint64(len(d)) || nR > 1<<28 {
		return nil, errCache
	}
	// Check the layout, then build the merges table on another core while
	// the vocabulary is built here.
	m := &cachedModel{vocab: make(map[string]uint32, nV), vocabR: make([]string, nR), stripped: stripped}
	rest := d
	for i := uint32(0); i < nV; i++ {
		id, ok1 := get32()
		n, ok2 := get32()
		if !ok1 || !ok2 || uint64(n) > uint64(len(d)) || id >= nR {
			return nil, errCache
		}
		d = d[n:]
	}
	nM, ok := get32()
	if !ok || uint64(nM)*16 != uint64(len(d)) {
		return nil, errCache
	}
	mergeData := d
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.merges = make(map[uint64]uint64, nM)
		for md := mergeData; len(md) >= 16; md = md[16:] {
			m.merges[binary.LittleEndian.Uint64(md)] = binary.LittleEndian.Uint64(md[8:])
		}
	}()
	d = rest
	for i := uint32(0); i < nV; i++ {
		id := binary.LittleEndian.Uint32(d)
		n := binary.LittleEndian.Uint32(d[4:])
		tok := string(d[8 : 8+n])
		d = d[8+n:]
		m.vocab[tok] = id
		m.vocabR[id] = tok
	}
	<-done
	return m, nil
}
