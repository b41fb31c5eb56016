package tokenizer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The differential fuzzer: generated text (textgen_test.go) is encoded by
// every family with this package and with the npm oracle (Hugging Face's
// Rust tokenizers, oracle/serve.js), and any difference in ids, ids with
// special tokens or decode fails. TestOracleDifferential runs a fixed,
// seeded slice in CI; for long runs:
//
//	MARIN_ORACLE_FUZZ_DURATION=30m MARIN_ORACLE_FUZZ_FINDS=/tmp/finds.jsonl \
//	  go test -run TestOracleDifferential -timeout 0 -v ./backends/tokens/tokenizer/
//
// MARIN_ORACLE_FUZZ_FAMILIES=albert,t5_iso limits a run to those families.
//
// FuzzOracle is the same check as a Go fuzz target (the input bytes drive
// the generator):
//
//	go test -run '^$' -fuzz FuzzOracle -fuzztime 10m ./backends/tokens/tokenizer/
//
// Each find, shrunk, goes into testdata/oracle_finds.jsonl, which
// oracle/gen_corpus.js appends to the parity corpus (then node goldens.js).

type oracleAnswer struct {
	IDs        []uint32 `json:"ids"`
	IDsSpecial []uint32 `json:"ids_special"`
	Decode     string   `json:"decode"`
}

// oracleProc is a running oracle/serve.js.
type oracleProc struct {
	mu  sync.Mutex
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startOracle starts the oracle on the given files; it skips (or, with
// MARIN_REQUIRE_ORACLE_FILES=1, fails) when node or the npm package is
// missing.
func startOracle(t testing.TB, files []string) *oracleProc {
	t.Helper()
	missing := func(what string, err error) {
		if requireOracleFiles() {
			t.Fatalf("oracle: %s: %v (cd backends/tokens/tokenizer/oracle && npm ci)", what, err)
		}
		t.Skipf("oracle: %s: %v; see oracle/README.md", what, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node", err)
	}
	if _, err := os.Stat(filepath.Join("oracle", "node_modules", "tokenizers")); err != nil {
		missing("npm package tokenizers", err)
	}
	cmd := exec.Command(node, append([]string{filepath.Join("oracle", "serve.js")}, files...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start oracle: %v", err)
	}
	return &oracleProc{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
}

// sharedOracle is one oracle process on every installed family for the
// whole test binary (it exits when its stdin closes with the binary).
var sharedOracle struct {
	once  sync.Once
	o     *oracleProc
	files []string
}

func familyOracle(t testing.TB, files []string) *oracleProc {
	sharedOracle.once.Do(func() {
		sharedOracle.o = startOracle(t, files)
		sharedOracle.files = files
	})
	if sharedOracle.o == nil {
		t.Skip("oracle did not start")
	}
	if !slices.Equal(files, sharedOracle.files) {
		t.Fatalf("oracle started on %v, asked for %v", sharedOracle.files, files)
	}
	return sharedOracle.o
}

// encode returns the oracle's answers, indexed [file][text].
func (o *oracleProc) encode(texts []string) ([][]oracleAnswer, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	req, err := json.Marshal(map[string][]string{"texts": texts})
	if err != nil {
		return nil, err
	}
	if _, err := o.in.Write(append(req, '\n')); err != nil {
		return nil, fmt.Errorf("oracle request: %w", err)
	}
	line, err := o.out.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("oracle answer: %w", err)
	}
	var ans [][]oracleAnswer
	if err := json.Unmarshal(line, &ans); err != nil {
		return nil, fmt.Errorf("oracle answer: %w", err)
	}
	for _, a := range ans {
		if len(a) != len(texts) {
			return nil, fmt.Errorf("oracle answered %d texts for %d", len(a), len(texts))
		}
	}
	return ans, nil
}

// oracleDiff describes how tk differs from the oracle's answer on s, or
// returns "".
func oracleDiff(tk *Tokenizer, s string, want oracleAnswer) string {
	if got := tk.Encode(s, EncodeOptions{SplitSpecial: true}); !slices.Equal(got, want.IDs) {
		return fmt.Sprintf("ids: got %v, want %v", got, want.IDs)
	}
	if got := tk.Encode(s, EncodeOptions{AddSpecialTokens: true, SplitSpecial: true}); !slices.Equal(got, want.IDsSpecial) {
		return fmt.Sprintf("ids_special: got %v, want %v", got, want.IDsSpecial)
	}
	if got := tk.Decode(want.IDsSpecial, false); got != want.Decode {
		return fmt.Sprintf("decode: got %q, want %q", got, want.Decode)
	}
	return ""
}

// fuzzFamilies loads every family whose file is installed, or those
// MARIN_ORACLE_FUZZ_FAMILIES names (comma-separated).
func fuzzFamilies(t testing.TB) ([]family, []*Tokenizer, []string) {
	var fams []family
	var toks []*Tokenizer
	var files []string
	var only []string
	if v := os.Getenv("MARIN_ORACLE_FUZZ_FAMILIES"); v != "" {
		only = strings.Split(v, ",")
	}
	for _, f := range loadFamilies(t) {
		if only != nil && !slices.Contains(only, f.Name) {
			continue
		}
		p, err := familyFileIfPresent(f)
		if err != nil {
			if requireOracleFiles() {
				t.Fatalf("%s: %v", f.Name, err)
			}
			continue
		}
		fams = append(fams, f)
		toks = append(toks, loadFamily(t, f))
		files = append(files, p)
	}
	if len(fams) == 0 {
		t.Skip("no tokenizer files installed; see oracle/README.md")
	}
	return fams, toks, files
}

// shrink removes runes from s while the family still differs from the
// oracle, so that a find is committed in its smallest form.
func shrink(o *oracleProc, idx int, tk *Tokenizer, s string) string {
	differs := func(c string) bool {
		ans, err := o.encode([]string{c})
		return err == nil && oracleDiff(tk, c, ans[idx][0]) != ""
	}
	rs := []rune(s)
	for chunk := max(len(rs)/2, 1); chunk >= 1; chunk /= 2 {
		for i := 0; i+chunk <= len(rs); {
			c := append(slices.Clone(rs[:i]), rs[i+chunk:]...)
			if len(c) > 0 && differs(string(c)) {
				rs = c
				continue
			}
			i += chunk
		}
	}
	return string(rs)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// TestOracleDifferential checks generated text against the oracle: 1,024
// strings from a fixed seed by default; MARIN_ORACLE_FUZZ_DURATION runs
// for that long from MARIN_ORACLE_FUZZ_SEED (default: the clock, logged),
// logging progress every minute, and MARIN_ORACLE_FUZZ_FINDS appends each
// shrunk find to a file as a JSON string.
func TestOracleDifferential(t *testing.T) {
	fams, toks, files := fuzzFamilies(t)
	o := familyOracle(t, files)
	seed := uint64(envInt("MARIN_ORACLE_FUZZ_SEED", 15))
	count := envInt("MARIN_ORACLE_FUZZ_N", 1024)
	var deadline time.Time
	if d, err := time.ParseDuration(os.Getenv("MARIN_ORACLE_FUZZ_DURATION")); err == nil {
		deadline = time.Now().Add(d)
		count = -1
		if os.Getenv("MARIN_ORACLE_FUZZ_SEED") == "" {
			seed = uint64(time.Now().UnixNano())
		}
	}
	t.Logf("seed %d, %d families", seed, len(fams))
	var findsFile *os.File
	if p := os.Getenv("MARIN_ORACLE_FUZZ_FINDS"); p != "" {
		var err error
		if findsFile, err = os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			t.Fatal(err)
		}
		defer findsFile.Close()
	}
	r := rand.New(rand.NewPCG(seed, 0x15))
	gen := textGenerator()
	const batch = 64
	checked, bytes, mismatches := 0, 0, 0
	start, lastLog := time.Now(), time.Now()
	perFamily := make([]int, len(fams))
	for count < 0 || checked < count {
		if count < 0 && time.Now().After(deadline) {
			break
		}
		texts := make([]string, batch)
		for i := range texts {
			texts[i] = gen.text(r)
			bytes += len(texts[i])
		}
		ans, err := o.encode(texts)
		if err != nil {
			t.Fatal(err)
		}
		for fi, tk := range toks {
			for i, s := range texts {
				d := oracleDiff(tk, s, ans[fi][i])
				if d == "" {
					continue
				}
				perFamily[fi]++
				mismatches++
				small := shrink(o, fi, tk, s)
				sa, _ := o.encode([]string{small})
				if mismatches <= 30 {
					t.Errorf("%s: %q (shrunk from %q):\n  %s", fams[fi].Name, small, s, oracleDiff(tk, small, sa[fi][0]))
				}
				if findsFile != nil {
					line, _ := json.Marshal(small)
					fmt.Fprintf(findsFile, "%s\n", line)
				}
			}
		}
		checked += batch
		if count < 0 && time.Since(lastLog) > time.Minute {
			lastLog = time.Now()
			el := time.Since(start)
			t.Logf("%v: %d strings (%.1f KB) x %d families, %.0f strings/s, %d mismatches, %v left",
				el.Round(time.Second), checked, float64(bytes)/1e3, len(fams), float64(checked)/el.Seconds(), mismatches, time.Until(deadline).Round(time.Second))
		}
	}
	for fi, f := range fams {
		t.Logf("%s: %d strings, %d mismatches", f.Name, checked, perFamily[fi])
	}
	t.Logf("%d strings (%.1f KB) in %v", checked, float64(bytes)/1e3, time.Since(start).Round(time.Millisecond))
}

// FuzzOracle is TestOracleDifferential as a Go fuzz target.
func FuzzOracle(f *testing.F) {
	for _, s := range []string{"", "seed", "\x00\x01\x02\x03\x04\x05\x06\x07", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7"} {
		f.Add([]byte(s))
	}
	fams, toks, files := fuzzFamilies(f)
	o := familyOracle(f, files)
	// The oracle loads its files before answering: wait for that here, not
	// in the first input (go test -fuzz takes an input that runs 10 s as a
	// hang and kills the worker).
	if _, err := o.encode([]string{"warm up"}); err != nil {
		f.Fatal(err)
	}
	gen := textGenerator()
	f.Fuzz(func(t *testing.T, data []byte) {
		s := gen.text(rand.New(&bytesSource{data: data}))
		ans, err := o.encode([]string{s})
		if err != nil {
			t.Fatal(err)
		}
		for fi, tk := range toks {
			if d := oracleDiff(tk, s, ans[fi][0]); d != "" {
				t.Errorf("%s: %q: %s", fams[fi].Name, s, d)
			}
		}
	})
}
