package weights

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/safetensors"
	"github.com/marin-go/marin/plugins/hfhub"
	"github.com/marin-go/marin/plugins/hfhub/hubtest"
)

func tinyConfig() llama.Config {
	eps := 1e-5
	return llama.Config{
		HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		VocabSize: 40, MaxPositionEmbeddings: 64, RMSNormEps: eps, RopeTheta: 10000,
		RopeScaling: &llama.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16},
	}
}

// flat is every tensor's values with its name and shape, in order.
func flat(p *llama.Params) []string {
	var out []string
	for _, t := range p.Tensors() {
		out = append(out, fmt.Sprintf("%s %v", t.Name, t.Shape))
		for _, v := range t.Data {
			out = append(out, fmt.Sprint(math.Float32bits(v)))
		}
	}
	return out
}

func TestExportThenImportGivesIdenticalWeights(t *testing.T) {
	for _, tied := range []bool{false, true} {
		cfg := tinyConfig()
		cfg.TieWordEmbeddings = tied
		cfg.AttentionBias = !tied // biases travel too
		p, err := Init(cfg, 11)
		if err != nil {
			t.Fatal(err)
		}
		for _, tn := range p.Tensors() {
			if strings.HasSuffix(tn.Name, ".bias") {
				for i := range tn.Data {
					tn.Data[i] = float32(i%5) * 0.01
				}
			}
		}
		want := flat(p)
		tokDir := t.TempDir()
		os.WriteFile(filepath.Join(tokDir, "tokenizer.json"), []byte(`{"model":{}}`), 0o644)
		os.WriteFile(filepath.Join(tokDir, "tokenizer_config.json"), []byte(`{}`), 0o644)
		dir := filepath.Join(t.TempDir(), "hf", "step-3")
		bos := 1
		err = ExportHF(dir, p, ExportOptions{TokenizerDir: tokDir, BOSTokenID: &bos, EOSTokenIDs: []int{2, 7},
			Extra: map[string][]byte{"marin.json": []byte(`{"step":3}`)}})
		if err != nil {
			t.Fatal(err)
		}
		q, info, err := LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if info.DTypes[safetensors.F32] != len(p.Tensors()) {
			t.Errorf("dtypes %v", info.DTypes)
		}
		if got := flat(q); !slices.Equal(got, want) {
			t.Fatalf("tied=%v: weights differ after export and import", tied)
		}
		// What transformers needs is in config.json and generation_config.json.
		var c map[string]any
		raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		if c["model_type"] != "llama" || c["architectures"].([]any)[0] != "LlamaForCausalLM" || c["torch_dtype"] != "float32" ||
			c["tie_word_embeddings"] != tied || c["eos_token_id"] != 2.0 || c["bos_token_id"] != 1.0 || c["head_dim"] != 8.0 {
			t.Errorf("config.json: %s", raw)
		}
		var g map[string]any
		raw, _ = os.ReadFile(filepath.Join(dir, "generation_config.json"))
		json.Unmarshal(raw, &g)
		if eos, _ := g["eos_token_id"].([]any); len(eos) != 2 || eos[1] != 7.0 || g["bos_token_id"] != 1.0 {
			t.Errorf("generation_config.json: %s", raw)
		}
		for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "marin.json", "model.safetensors"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Error(err)
			}
		}
		// No temporary directories are left beside it.
		ents, _ := os.ReadDir(filepath.Dir(dir))
		if len(ents) != 1 {
			t.Errorf("export left %d entries in hf/", len(ents))
		}
	}
}

func TestShardedBF16WeightsLoad(t *testing.T) {
	p, err := Init(tinyConfig(), 5)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Sharded at 4 KB, in BF16, as a hub model is often stored.
	if err := WriteModelFiles(dir, p, ExportOptions{DType: safetensors.BF16, MaxShardBytes: 4 << 10}); err != nil {
		t.Fatal(err)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	if len(shards) < 3 {
		t.Fatalf("%d shards", len(shards))
	}
	if _, err := os.Stat(filepath.Join(dir, safetensors.IndexName)); err != nil {
		t.Fatal(err)
	}
	q, info, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.DTypes[safetensors.BF16] != len(p.Tensors()) {
		t.Errorf("dtypes %v", info.DTypes)
	}
	for i, v := range p.Flat() {
		want := math.Float32frombits(uint32(safetensors.F32ToBF16(v)) << 16)
		if q.Flat()[i] != want {
			t.Fatalf("value %d: %v, want bf16 of %v = %v", i, q.Flat()[i], v, want)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if !strings.Contains(string(raw), `"torch_dtype": "bfloat16"`) {
		t.Errorf("config.json: %s", raw)
	}
}

func TestCorruptOrMismatchedWeightsAreRefused(t *testing.T) {
	p, err := Init(tinyConfig(), 5)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteModelFiles(dir, p, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, "model.safetensors")
	good, _ := os.ReadFile(st)

	os.WriteFile(st, good[:len(good)-100], 0o644)
	if _, _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("truncated: %v", err)
	}
	os.WriteFile(st, good[:5], 0o644)
	if _, _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("header cut: %v", err)
	}
	os.WriteFile(st, good, 0o644)
	// A config that does not match the weights.
	cfg := tinyConfig()
	cfg.NumHiddenLayers = 1
	raw, _ := HFConfigJSON(cfg, ExportOptions{})
	os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644)
	if _, _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "model.layers.1.") {
		t.Errorf("extra layer: %v", err)
	}
	cfg.NumHiddenLayers, cfg.HiddenSize, cfg.NumAttentionHeads, cfg.NumKeyValueHeads = 2, 16, 2, 1
	raw, _ = HFConfigJSON(cfg, ExportOptions{})
	os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644)
	if _, _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("wrong shape: %v", err)
	}
}

func TestInitIsDeterministicBySeed(t *testing.T) {
	a, _ := Init(tinyConfig(), 3)
	b, _ := Init(tinyConfig(), 3)
	c, _ := Init(tinyConfig(), 4)
	same, diff := true, false
	for i, v := range a.Flat() {
		same = same && math.Float32bits(v) == math.Float32bits(b.Flat()[i])
		diff = diff || v != c.Flat()[i]
	}
	if !same || !diff {
		t.Errorf("same seed equal: %v, other seed differs: %v", same, diff)
	}
	// transformers' init: N(0, 0.02) matrices, unit norms.
	var ss float64
	for _, v := range a.Embed.Data {
		ss += float64(v) * float64(v)
	}
	if std := math.Sqrt(ss / float64(len(a.Embed.Data))); std < 0.017 || std > 0.023 {
		t.Errorf("embedding std %v, want about 0.02", std)
	}
	if a.Norm.Data[0] != 1 {
		t.Errorf("norm weight %v", a.Norm.Data[0])
	}
}

func TestLoadFromTheHub(t *testing.T) {
	p, _ := Init(tinyConfig(), 9)
	dir := t.TempDir()
	if err := WriteModelFiles(dir, p, ExportOptions{DType: safetensors.BF16, MaxShardBytes: 8 << 10}); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"tokenizer.json": []byte(`{}`), "README.md": []byte("hi"), "pytorch_model.bin": []byte("x")}
	lfs := map[string]bool{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		files[e.Name()] = b
		lfs[e.Name()] = strings.HasSuffix(e.Name(), ".safetensors")
	}
	hub := hubtest.New(&hubtest.Repo{Type: "model", ID: "org/tiny", Commit: strings.Repeat("ab", 20), Date: time.Now(),
		Files: files, LFS: lfs, Branches: []string{"main"}})
	defer hub.Close()
	t.Setenv("HF_ENDPOINT", hub.URL())
	t.Setenv("HF_TOKEN", "")
	t.Setenv(hfhub.CacheDirEnv, t.TempDir())

	got, err := Resolve(t.Context(), "org/tiny", nil)
	if err != nil {
		t.Fatal(err)
	}
	q, _, err := LoadDir(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Flat()) != len(p.Flat()) {
		t.Fatal("size differs")
	}
	if _, err := os.Stat(filepath.Join(got, "pytorch_model.bin")); err == nil {
		t.Error("fetched pytorch_model.bin, which is not read")
	}
	if _, err := os.Stat(filepath.Join(got, "tokenizer.json")); err != nil {
		t.Error(err)
	}
	// A second resolve uses the cache (no downloads).
	hub.ResetRequests()
	if _, err := Resolve(t.Context(), "org/tiny@main", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range hub.Requests() {
		if r.CDN {
			t.Errorf("downloaded again: %+v", r)
		}
	}
	if _, err := Resolve(t.Context(), "org/missing", nil); err == nil {
		t.Error("a missing repo resolved")
	}
}

func TestFindModelDirInATrainingOutput(t *testing.T) {
	out := t.TempDir()
	p, _ := Init(tinyConfig(), 1)
	for _, d := range []string{"hf/step-2", "hf/step-10"} {
		if err := ExportHF(filepath.Join(out, d), p, ExportOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := FindModelDir(out)
	if err != nil || got != filepath.Join(out, "hf", "step-10") {
		t.Errorf("FindModelDir = %q, %v", got, err)
	}
	if got, err := FindModelDir(filepath.Join(out, "hf")); err != nil || got != filepath.Join(out, "hf", "step-10") {
		t.Errorf("FindModelDir(hf) = %q, %v", got, err)
	}
	if _, err := FindModelDir(t.TempDir()); err == nil {
		t.Error("an empty directory holds a model")
	}
}

// TestHugeConfigNextToSmallWeightsIsRefusedBeforeAllocating reproduces
// defect 3 of issue 16: config.json sizes were trusted before the weights
// were read, so a config claiming huge sizes next to small safetensors
// made loading panic (makeslice: len out of range) or run out of memory.
func TestHugeConfigNextToSmallWeightsIsRefusedBeforeAllocating(t *testing.T) {
	p, err := Init(tinyConfig(), 5)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteModelFiles(dir, p, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, config, want string
	}{
		{"absurd width", `{"hidden_size": 1073741824, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 40}`, "hidden_size 1073741824 is beyond the limit"},
		{"absurd depth", `{"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 1000000000000, "num_attention_heads": 4, "vocab_size": 40}`, "num_hidden_layers"},
		{"overflowing product", `{"hidden_size": 16777216, "intermediate_size": 16777216, "num_hidden_layers": 4096, "num_attention_heads": 16384, "num_key_value_heads": 16384, "head_dim": 1024, "vocab_size": 16777216}`, "beyond the limit"},
		{"a 70B model", `{"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256}`, ""},
		{"a 170M model", `{"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 8, "num_attention_heads": 16, "vocab_size": 32000}`, "model.embed_tokens.weight has shape [40 32], config.json needs [32000 1024]"},
	}
	for _, c := range cases {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(c.config), 0o644); err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var lerr error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("%s: LoadDir panicked: %v", c.name, r)
				}
			}()
			_, _, lerr = LoadDir(dir)
		}()
		runtime.ReadMemStats(&after)
		if lerr == nil || !strings.Contains(lerr.Error(), c.want) {
			t.Errorf("%s: LoadDir = %v, want an error containing %q", c.name, lerr, c.want)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Errorf("%s: %d MiB allocated before the config was refused", c.name, grew>>20)
		}
	}
	if _, err := Init(llama.Config{HiddenSize: 1 << 30, IntermediateSize: 8, NumHiddenLayers: 1, NumAttentionHeads: 1, VocabSize: 8, MaxPositionEmbeddings: 8}, 1); err == nil {
		t.Error("Init accepted an absurd config")
	}
}
