package tokenizer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// family is one entry of testdata/families.json: a tokenizer.json file the
// parity goldens were made from.
type family struct {
	Name     string `json:"name"`
	Source   string `json:"source"` // gomod, npm (oracle/node_modules), oracle (oracle/, made by make_files.js)
	Module   string `json:"module"`
	Path     string `json:"path"`
	Lossless bool   `json:"lossless"`
	Padded   bool   `json:"padded"` // file configures padding: compare single encodes
}

var modCache = sync.OnceValue(func() string {
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d
	}
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
})

func loadFamilies(t testing.TB) []family {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "families.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fams []family
	if err := json.Unmarshal(data, &fams); err != nil {
		t.Fatalf("testdata/families.json: %v", err)
	}
	return fams
}

func (f family) file() string {
	switch f.Source {
	case "gomod":
		mod, ver, _ := strings.Cut(f.Module, "@")
		return filepath.Join(modCache(), mod+"@"+ver, filepath.FromSlash(f.Path))
	case "npm":
		return filepath.Join("oracle", "node_modules", filepath.FromSlash(f.Path))
	}
	return filepath.Join("oracle", filepath.FromSlash(f.Path))
}

// requireOracleFiles is set in CI, where a missing tokenizer file is a
// failure rather than a skip.
func requireOracleFiles() bool { return os.Getenv("MARIN_REQUIRE_ORACLE_FILES") == "1" }

// familyFile returns the family's tokenizer.json path, skipping the test
// when it is not installed (see oracle/README.md).
func familyFile(t testing.TB, f family) string {
	t.Helper()
	p := f.file()
	if _, err := os.Stat(p); err != nil {
		if requireOracleFiles() {
			t.Fatalf("%s: tokenizer file missing (%v); install with: go mod download %s; (cd backends/tokens/tokenizer/oracle && npm ci)", f.Name, err, f.Module)
		}
		t.Skipf("%s: tokenizer file missing (%v); see backends/tokens/tokenizer/oracle/README.md", f.Name, err)
	}
	return p
}

var tokCache sync.Map

func loadFamily(t testing.TB, f family) *Tokenizer {
	t.Helper()
	p := familyFile(t, f)
	if tk, ok := tokCache.Load(p); ok {
		return tk.(*Tokenizer)
	}
	tk, err := FromFile(p)
	if err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	tokCache.Store(p, tk)
	return tk
}

func readGzipLines(t testing.TB, path string, fn func(line []byte)) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		if len(sc.Bytes()) > 0 {
			fn(sc.Bytes())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadCorpus(t testing.TB) []string {
	t.Helper()
	var out []string
	readGzipLines(t, filepath.Join("testdata", "corpus.jsonl.gz"), func(line []byte) {
		var s string
		if err := json.Unmarshal(line, &s); err != nil {
			t.Fatalf("corpus: %v", err)
		}
		out = append(out, s)
	})
	return out
}

type golden struct {
	IDs        []uint32 `json:"ids"`
	IDsSpecial []uint32 `json:"ids_special"`
	IDsText    []uint32 `json:"ids_text"`
	Decode     string   `json:"decode"`
	DecodeSkip string   `json:"decode_skip"`
}

func loadGoldens(t testing.TB, name string) []golden {
	t.Helper()
	var out []golden
	readGzipLines(t, filepath.Join("testdata", "golden", name+".jsonl.gz"), func(line []byte) {
		var g golden
		if err := json.Unmarshal(line, &g); err != nil {
			t.Fatalf("golden %s: %v", name, err)
		}
		out = append(out, g)
	})
	return out
}

var osStat = os.Stat
