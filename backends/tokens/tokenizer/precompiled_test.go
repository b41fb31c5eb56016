package tokenizer

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// buildCharsmap makes a precompiled_charsmap (Darts-clone double array plus
// NUL-terminated replacements) holding rules, for tests.
func buildCharsmap(t testing.TB, rules map[string]string) string {
	t.Helper()
	keys := make([]string, 0, len(rules))
	for k := range rules {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var blob []byte
	values := map[string]uint32{}
	for _, k := range keys {
		values[k] = uint32(len(blob))
		blob = append(append(blob, rules[k]...), 0)
	}
	// A plain trie first.
	type node struct {
		children map[byte]*node
		leaf     bool
		value    uint32
	}
	root := &node{children: map[byte]*node{}}
	for _, k := range keys {
		n := root
		for i := 0; i < len(k); i++ {
			c, ok := n.children[k[i]]
			if !ok {
				c = &node{children: map[byte]*node{}}
				n.children[k[i]] = c
			}
			n = c
		}
		n.leaf, n.value = true, values[k]
	}
	units := make([]uint32, 1)
	used := []bool{true}
	usedBase := map[uint32]bool{}
	grow := func(n int) {
		for len(units) < n {
			units = append(units, 0)
			used = append(used, false)
		}
	}
	free := func(p uint32) bool { return int(p) >= len(used) || !used[p] }
	var place func(n *node, pos uint32, label byte)
	place = func(n *node, pos uint32, label byte) {
		labels := make([]byte, 0, len(n.children))
		for c := range n.children {
			labels = append(labels, c)
		}
		slices.Sort(labels)
		base := uint32(1)
		for ; ; base++ {
			if usedBase[base] || (n.leaf && !free(base)) {
				continue
			}
			ok := true
			for _, c := range labels {
				if !free(base ^ uint32(c)) {
					ok = false
					break
				}
			}
			if ok {
				break
			}
		}
		usedBase[base] = true
		off := pos ^ base
		if off >= 1<<21 {
			t.Fatalf("test charsmap too large")
		}
		u := off<<10 | uint32(label)
		if n.leaf {
			u |= 1 << 8
			grow(int(base) + 1)
			units[base] = n.value | 1<<31
			used[base] = true
		}
		grow(int(pos) + 1)
		units[pos] = u
		used[pos] = true
		for _, c := range labels {
			p := base ^ uint32(c)
			grow(int(p) + 1)
			used[p] = true
		}
		for _, c := range labels {
			place(n.children[c], base^uint32(c), c)
		}
	}
	place(root, 0, 0)
	data := binary.LittleEndian.AppendUint32(nil, uint32(4*len(units)))
	for _, u := range units {
		data = binary.LittleEndian.AppendUint32(data, u)
	}
	data = append(data, blob...)
	return base64.StdEncoding.EncodeToString(data)
}

var precompiledRules = map[string]string{
	"\u00a0":       " ",
	"\uff21":       "A",
	"\ufb01":       "fi",
	"\r":           " ",
	"\n":           " ",
	"\u200b":       "",
	"ab":           "X", // spans two clusters: never matches
	"e\u0301":      "\u00e9",
	"\u0600":       "",
	"\u2163":       "IV",
	"\u3131":       "\u1100",
	"\u0915\u094d": "K",
}

// precompiledCases are checked against the oracle by TestPrecompiledOracle.
var precompiledCases = []struct{ in, want string }{
	{"plain text", "plain text"},
	{"a\u00a0b", "a b"},
	{"\u00a0\u0301x", " x"},                 // NBSP + accent: one short cluster, replaced whole
	{"\uff21\u0308\u0308", "A\u0308\u0308"}, // 7 bytes: per character
	{"\uff21\u0308", "A"},                   // 5 bytes: replaced whole, the accent dropped
	{"\ufb01", "fi"},                        // expansion
	{"x\r\ny", "x y"},                       // CR LF is one cluster: replaced by CR's rule
	{"x\n\ry", "x  y"},                      // LF, CR: two clusters
	{"ab", "ab"},                            // a key across clusters does not match
	{"e\u0301", "\u00e9"},                   // a multi-character key inside a cluster
	{"e\u0301\u0301", "\u00e9"},             // the shortest key wins, the rest of the cluster goes
	{"\u200bz", "z"},                        // deletion
	{"\u0600\uff21", ""},                    // Prepend joins the next character: the cluster is \u0600's
	{"\u0600\n", " "},                       // ... but not before a control: two clusters
	{"\u2163\u2163", "IVIV"},
	{"\u0915\u094d\u0937", "\u0915\u094d\u0937"}, // conjunct cluster of 9 bytes: per character, no rule
	{"\u0915\u094d", "\u0915\u094d"},             // 6 bytes: per character, where no rule matches
	{"\u3131\u314f", "\u1100\u314f"},
}

func TestPrecompiledNormalize(t *testing.T) {
	p, err := parsePrecompiled(buildCharsmap(t, precompiledRules))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range precompiledCases {
		if got := p.normalize(c.in); got != c.want {
			t.Errorf("normalize(%+q) = %+q, want %+q", c.in, got, c.want)
		}
	}
}

// TestPrecompiledOracle runs precompiledCases through the oracle's
// Precompiled normalizer with the same charsmap.
func TestPrecompiledOracle(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	if _, err := os.Stat(filepath.Join("oracle", "node_modules", "tokenizers")); err != nil {
		if requireOracleFiles() {
			t.Fatal("oracle not installed")
		}
		t.Skip("oracle not installed: see oracle/README.md")
	}
	var ins []string
	for _, c := range precompiledCases {
		ins = append(ins, c.in)
	}
	req, _ := json.Marshal(map[string]any{"charsmap": buildCharsmap(t, precompiledRules), "texts": ins})
	in := filepath.Join(t.TempDir(), "req.json")
	if err := os.WriteFile(in, req, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `const {Tokenizer}=require("tokenizers");const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));` +
		`const n=Tokenizer.fromString(JSON.stringify({model:{type:"WordLevel",vocab:{x:0},unk_token:"x"},` +
		`normalizer:{type:"Precompiled",precompiled_charsmap:r.charsmap}})).getNormalizer();` +
		`process.stdout.write(JSON.stringify(r.texts.map(s=>n.normalizeString(s))))`
	cmd := exec.Command("node", "-e", script, in)
	cmd.Dir = "oracle"
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	var got []string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for i, c := range precompiledCases {
		if got[i] != c.want {
			t.Errorf("oracle normalize(%+q) = %+q, the test wants %+q", c.in, got[i], c.want)
		}
	}
}

func TestPrecompiledErrors(t *testing.T) {
	for _, c := range []struct{ b64, want string }{
		{"!!", "not base64"},
		{"", "too short"},
		{base64.StdEncoding.EncodeToString([]byte{8, 0, 0, 0, 1}), "trie of 8 bytes"},
		{base64.StdEncoding.EncodeToString([]byte{0, 0, 0, 0}), "empty trie"},
		{base64.StdEncoding.EncodeToString([]byte{4, 0, 0, 0, 0, 0, 0, 0, 0xff}), "not UTF-8"},
	} {
		if _, err := parsePrecompiled(c.b64); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parsePrecompiled(%q) = %v, want error containing %q", c.b64, err, c.want)
		}
	}
}

// FuzzPrecompiled feeds arbitrary charsmaps and text: loading either fails
// cleanly or normalizing never panics and returns valid UTF-8 for valid
// replacement strings.
func FuzzPrecompiled(f *testing.F) {
	f.Add(mustDecode(buildCharsmap(f, map[string]string{"\u00a0": " ", "ab": "x"})), "a\u00a0b\r\n")
	f.Add([]byte{4, 0, 0, 0, 0, 4, 0, 0, 'x', 0}, "abc")
	f.Fuzz(func(t *testing.T, charsmap []byte, text string) {
		p, err := parsePrecompiled(base64.StdEncoding.EncodeToString(charsmap))
		if err != nil {
			return
		}
		_ = p.normalize(text)
	})
}

func mustDecode(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestGraphemeClusters(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"ab", []string{"a", "b"}},
		{"\r\n\n", []string{"\r\n", "\n"}},
		{"a\u0301\u0302b", []string{"a\u0301\u0302", "b"}},
		{"\t\u0301", []string{"\t", "\u0301"}},
		{"\u0600a", []string{"\u0600a"}},
		{"\u0600\n", []string{"\u0600", "\n"}},
		{"\u0915\u0940", []string{"\u0915\u0940"}},             // SpacingMark
		{"\u0915\u094d\u0937", []string{"\u0915\u094d\u0937"}}, // GB9c conjunct
		{"\u0915\u0937", []string{"\u0915", "\u0937"}},         // no linker
		{"\u1100\u1161\u11a8\u1100", []string{"\u1100\u1161\u11a8", "\u1100"}},
		{"\uac00\u11a8", []string{"\uac00\u11a8"}}, // LV T
		{"\U0001f1eb\U0001f1f7\U0001f1ef", []string{"\U0001f1eb\U0001f1f7", "\U0001f1ef"}},
		{"\U0001f468\u200d\U0001f469", []string{"\U0001f468\u200d\U0001f469"}},
		{"a\u200d\U0001f469", []string{"a\u200d", "\U0001f469"}}, // GB11 needs a pictograph before
		{"\U0001f44d\U0001f3fd", []string{"\U0001f44d\U0001f3fd"}},
	} {
		var got []string
		for s := c.in; s != ""; {
			n := nextGrapheme(s)
			got = append(got, s[:n])
			s = s[n:]
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("clusters of %+q = %+q, want %+q", c.in, got, c.want)
		}
	}
}

// TestGraphemeClustersICU compares nextGrapheme with Node's Intl.Segmenter
// (ICU) on generated text when Node's Unicode version is the tables' (17.0).
func TestGraphemeClustersICU(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	ver, err := exec.Command(node, "-p", "process.versions.unicode").Output()
	if err != nil || strings.TrimSpace(string(ver)) != "17.0" {
		t.Skipf("node's Unicode is %q, the tables are 17.0", strings.TrimSpace(string(ver)))
	}
	gen := textGenerator()
	r := rand.New(rand.NewPCG(29, 1))
	texts := make([]string, 3000)
	for i := range texts {
		texts[i] = gen.text(r)
	}
	in := filepath.Join(t.TempDir(), "texts.json")
	data, _ := jsonMarshal(texts)
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `const t=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));` +
		`const s=new Intl.Segmenter("en",{granularity:"grapheme"});` +
		`process.stdout.write(JSON.stringify(t.map(x=>[...s.segment(x)].map(g=>Buffer.byteLength(g.segment)))))`
	out, err := exec.Command(node, "-e", script, in).Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var want [][]int
	if err := jsonUnmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i, s := range texts {
		var got []int
		for rest := s; rest != ""; {
			n := nextGrapheme(rest)
			got = append(got, n)
			rest = rest[n:]
		}
		if !utf8.ValidString(s) {
			continue
		}
		if !slices.Equal(got, want[i]) {
			if bad++; bad <= 10 {
				t.Errorf("%+q: clusters %v, ICU %v", s, got, want[i])
			}
		}
	}
}

func jsonMarshal(v any) ([]byte, error)   { return json.Marshal(v) }
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
