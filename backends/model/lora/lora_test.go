package lora

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/safetensors"
)

func testConfig(t testing.TB, js string) llama.Config {
	t.Helper()
	c, err := llama.ParseConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return c.Normalized()
}

// llamaTied: 2 layers, GQA, tied embeddings; qwenBias: q/k/v biases, untied.
const (
	llamaTied = `{"model_type": "llama", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24,
	  "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
	  "tie_word_embeddings": true, "max_position_embeddings": 64}`
	qwenBias = `{"model_type": "qwen2", "vocab_size": 36, "hidden_size": 12, "intermediate_size": 20,
	  "num_hidden_layers": 1, "num_attention_heads": 3, "num_key_value_heads": 3,
	  "tie_word_embeddings": false, "max_position_embeddings": 64}`
)

func moduleNames(a *Adapter) []string {
	var out []string
	for _, m := range a.Modules {
		out = append(out, m.Name)
	}
	return out
}

func TestTargets(t *testing.T) {
	c := testConfig(t, llamaTied)
	cases := []struct {
		name    string
		targets Targets
		exclude Targets
		layers  []int
		want    []string
	}{
		{"PEFT's default for llama", Targets{}, Targets{}, nil, []string{
			"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
			"model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"}},
		{"names by suffix", Targets{Names: []string{"self_attn.o_proj", "down_proj"}}, Targets{}, nil, []string{
			"model.layers.0.self_attn.o_proj", "model.layers.0.mlp.down_proj",
			"model.layers.1.self_attn.o_proj", "model.layers.1.mlp.down_proj"}},
		{"a whole name", Targets{Names: []string{"model.layers.1.mlp.up_proj"}}, Targets{}, nil, []string{"model.layers.1.mlp.up_proj"}},
		{"a pattern matches whole names", Targets{Pattern: `.*\.(k|v)_proj`}, Targets{}, nil, []string{
			"model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
			"model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.v_proj"}},
		{"all-linear", Targets{Pattern: "ALL-LINEAR"}, Targets{}, []int{1}, []string{
			"model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.v_proj",
			"model.layers.1.self_attn.o_proj", "model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj", "model.layers.1.mlp.down_proj"}},
		{"exclude_modules", Targets{Names: []string{"q_proj", "v_proj"}}, Targets{Names: []string{"layers.0.self_attn.q_proj"}}, nil, []string{
			"model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"}},
	}
	for _, tc := range cases {
		s := Defaults()
		s.Targets, s.Exclude, s.Layers = tc.targets, tc.exclude, tc.layers
		a, err := New(s, c)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := moduleNames(a); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: adapted %v, want %v", tc.name, got, tc.want)
		}
		for _, m := range a.Modules {
			in, out := m.Kind.Dims(c)
			if !reflect.DeepEqual(m.A.Shape, []int{8, in}) || !reflect.DeepEqual(m.B.Shape, []int{out, 8}) {
				t.Errorf("%s: %s A %v B %v, want [8 %d] [%d 8]", tc.name, m.Name, m.A.Shape, m.B.Shape, in, out)
			}
			if m.A.Name != Prefix+m.Name+".lora_A.weight" || m.B.Name != Prefix+m.Name+".lora_B.weight" {
				t.Errorf("%s: tensor names %s, %s", tc.name, m.A.Name, m.B.Name)
			}
		}
	}
	bad := map[string]Spec{
		"LoRA on the embeddings":            {R: 4, Alpha: 8, Targets: Targets{Names: []string{"embed_tokens"}}},
		"LoRA on the output head":           {R: 4, Alpha: 8, Targets: Targets{Names: []string{"lm_head"}}},
		"only the linear projections":       {R: 4, Alpha: 8, Targets: Targets{Names: []string{"input_layernorm"}}},
		"holds other modules":               {R: 4, Alpha: 8, Targets: Targets{Names: []string{"mlp"}}},
		"matches no linear projection":      {R: 4, Alpha: 8, Targets: Targets{Names: []string{"c_attn"}}},
		"target_modules is empty":           {R: 4, Alpha: 8, Targets: Targets{Names: []string{}}},
		"ties to embed_tokens":              {R: 4, Alpha: 8, ModulesToSave: []string{"lm_head"}},
		"both adapted":                      {R: 4, Alpha: 8, ModulesToSave: []string{"q_proj"}},
		"matches no module with weights":    {R: 4, Alpha: 8, ModulesToSave: []string{"score"}},
		"layers_to_transform names layer 5": {R: 4, Alpha: 8, Layers: []int{5}},
		"r must be at least 1":              {R: 0, Alpha: 8},
		"lora_dropout must be in":           {R: 4, Alpha: 8, Dropout: 1},
		"bias must be":                      {R: 4, Alpha: 8, Bias: "some"},
		"missing closing )":                 {R: 4, Alpha: 8, Targets: Targets{Pattern: "(q_proj"}},
	}
	for want, s := range bad {
		if _, err := New(s, c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want one saying %q", s, err, want)
		}
	}
}

func TestFullyTrainedTensors(t *testing.T) {
	q := testConfig(t, qwenBias)
	for _, tc := range []struct {
		spec Spec
		want []string
	}{
		{Spec{R: 2, Alpha: 4, ModulesToSave: []string{"embed_tokens", "lm_head"}}, []string{"model.embed_tokens.weight", "lm_head.weight"}},
		{Spec{R: 2, Alpha: 4, Bias: BiasAll}, []string{"model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.k_proj.bias", "model.layers.0.self_attn.v_proj.bias"}},
		{Spec{R: 2, Alpha: 4, Bias: BiasLoRAOnly}, []string{"model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.v_proj.bias"}},
		{Spec{R: 2, Alpha: 4, ModulesToSave: []string{"norm"}, Targets: Targets{Names: []string{"o_proj"}}}, []string{
			"model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight", "model.norm.weight"}},
	} {
		a, err := New(tc.spec, q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range a.Full {
			got = append(got, BaseName(f.Name))
			if !strings.HasPrefix(f.Name, Prefix) {
				t.Errorf("%s lacks PEFT's prefix", f.Name)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v: trained in full %v, want %v", tc.spec, got, tc.want)
		}
	}
	// On a tied model modules_to_save = ["embed_tokens"] trains the one
	// matrix that is both.
	a, err := New(Spec{R: 2, Alpha: 4, ModulesToSave: []string{"embed_tokens"}}, testConfig(t, llamaTied))
	if err != nil || len(a.Full) != 1 {
		t.Fatalf("tied embed_tokens: %v %v", a, err)
	}
}

func TestResolved(t *testing.T) {
	c := testConfig(t, llamaTied)
	for _, tc := range []struct {
		in   Targets
		want Targets
	}{
		{Targets{Pattern: AllLinear}, Targets{Names: []string{"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}}},
		{Targets{}, Targets{Names: []string{"q_proj", "v_proj"}}},
		{Targets{Pattern: `.*q_proj`}, Targets{Pattern: `.*q_proj`}},
		{Targets{Names: []string{"v_proj", "q_proj"}}, Targets{Names: []string{"v_proj", "q_proj"}}},
	} {
		s := Defaults()
		s.Targets = tc.in
		r, err := s.Resolved(c)
		if err != nil || !reflect.DeepEqual(r.Targets, tc.want) {
			t.Errorf("%+v resolved to %+v (%v), want %+v", tc.in, r.Targets, err, tc.want)
		}
	}
}

func randomParams(t testing.TB, c llama.Config, seed uint64) *llama.Params {
	t.Helper()
	p, err := llama.InitParams(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range p.Tensors() {
		for i := range tn.Data {
			tn.Data[i] += float32(i%7) * 0.01
		}
	}
	return p
}

func TestInitMergeView(t *testing.T) {
	c := testConfig(t, qwenBias)
	base := randomParams(t, c, 1)
	orig := base.Clone()
	s := Spec{R: 4, Alpha: 12, Targets: Targets{Pattern: AllLinear}, ModulesToSave: []string{"embed_tokens"}, Bias: BiasLoRAOnly}
	a, err := New(s, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Init(base, 7); err != nil {
		t.Fatal(err)
	}
	b, _ := New(s, c)
	_ = b.Init(base, 7)
	if !reflect.DeepEqual(a.Flat(), b.Flat()) {
		t.Error("Init is not deterministic in its seed")
	}
	for _, m := range a.Modules {
		bound := 1 / math.Sqrt(float64(m.A.Shape[1]))
		for _, x := range m.A.Data {
			if math.Abs(float64(x)) > bound || x == 0 {
				t.Fatalf("%s: A value %g outside ±%g (kaiming_uniform a=√5) or zero", m.Name, x, bound)
			}
		}
		for _, x := range m.B.Data {
			if x != 0 {
				t.Fatalf("%s: B starts at %g, not 0", m.Name, x)
			}
		}
	}
	emb := a.Tensor(Prefix + "model.embed_tokens.weight")
	if !reflect.DeepEqual(emb.Data, base.Embed.Data) {
		t.Error("modules_to_save's embed_tokens does not start as the base's")
	}
	// A fresh adapter merges to the base itself.
	m0, err := a.Merge(base)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m0.Flat(), base.Flat()) {
		t.Error("merging a fresh adapter changed the model")
	}
	// Trained values: merge is W + s·B·A and the trained tensors.
	for i := range a.Flat() {
		a.Flat()[i] = float32(math.Sin(float64(i)))
	}
	merged, err := a.Merge(base)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(base.Flat(), orig.Flat()) {
		t.Fatal("Merge changed the base")
	}
	sc := 12.0 / 4
	for _, m := range a.Modules {
		w0 := m.Kind.Weight(&base.Layers[m.Layer])
		w := m.Kind.Weight(&merged.Layers[m.Layer])
		in, out, r := m.A.Shape[1], m.B.Shape[0], 4
		for o := range out {
			for i := range in {
				d := 0.0
				for k := range r {
					d += float64(m.B.Data[o*r+k]) * float64(m.A.Data[k*in+i])
				}
				want := float64(w0.Data[o*in+i]) + sc*d
				if math.Abs(float64(w.Data[o*in+i])-want) > 1e-5*math.Max(1, math.Abs(want)) {
					t.Fatalf("%s[%d,%d] merged to %g, want %g", m.Name, o, i, w.Data[o*in+i], want)
				}
			}
		}
	}
	for _, f := range a.Full {
		if got := merged.Tensor(BaseName(f.Name)); !reflect.DeepEqual(got.Data, f.Data) {
			t.Errorf("merged %s is not the adapter's", BaseName(f.Name))
		}
	}
	v, err := a.View(base)
	if err != nil {
		t.Fatal(err)
	}
	if &v.Embed.Data[0] != &emb.Data[0] || &v.Layers[0].Q.Data[0] != &base.Layers[0].Q.Data[0] || v.Flat() != nil {
		t.Error("View does not share the adapter's trained tensors and the base's others")
	}
	if !reflect.DeepEqual(v.Clone().Embed.Data, emb.Data) {
		t.Error("a clone of the view lost the replacement")
	}
}

func TestConfigJSON(t *testing.T) {
	s := Spec{R: 16, Alpha: 32, Dropout: 0.05, Targets: Targets{Names: []string{"v_proj", "q_proj"}}, Bias: BiasNone,
		ModulesToSave: []string{"embed_tokens"}, BaseModel: "meta-llama/Llama-3.1-8B", Revision: "0e9e39f"}
	raw, err := s.ConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 16.0, "lora_alpha": 32.0,
		"lora_dropout": 0.05, "bias": "none", "use_rslora": false, "use_dora": false, "fan_in_fan_out": false,
		"base_model_name_or_path": "meta-llama/Llama-3.1-8B", "revision": "0e9e39f", "inference_mode": true,
		"target_modules": []any{"q_proj", "v_proj"}, "modules_to_save": []any{"embed_tokens"}, "init_lora_weights": true} {
		if !reflect.DeepEqual(m[k], want) {
			t.Errorf("adapter_config.json %s = %v, want %v", k, m[k], want)
		}
	}
	back, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	s.Targets.Names = []string{"q_proj", "v_proj"}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("round trip: %+v, want %+v", back, s)
	}
	// PEFT's own output for all-linear and a pattern (an excerpt of what
	// peft 0.13 writes), and a layer index.
	got, err := ParseConfig([]byte(`{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 8, "lora_alpha": 16,
	  "lora_dropout": 0.1, "target_modules": ".*\\.q_proj", "bias": "none", "modules_to_save": null,
	  "use_rslora": true, "use_dora": false, "rank_pattern": {}, "alpha_pattern": {}, "layers_to_transform": 1,
	  "layers_pattern": null, "base_model_name_or_path": null, "revision": null, "loftq_config": {},
	  "megatron_config": null, "megatron_core": "megatron.core", "layer_replication": null}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{R: 8, Alpha: 16, Dropout: 0.1, Targets: Targets{Pattern: `.*\.q_proj`}, Bias: "none", UseRSLoRA: true, Layers: []int{1}}
	if !reflect.DeepEqual(got, want) || math.Abs(got.Scale()-16/math.Sqrt(8)) > 1e-12 {
		t.Errorf("parsed %+v, want %+v", got, want)
	}
	for frag, js := range map[string]string{
		"only LORA":              `{"peft_type": "PREFIX_TUNING"}`,
		"only CAUSAL_LM":         `{"peft_type": "LORA", "task_type": "SEQ_CLS", "r": 8, "lora_alpha": 8}`,
		"use_dora":               `{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "use_dora": true}`,
		"rank_pattern":           `{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "rank_pattern": {"q_proj": 4}}`,
		"fan_in_fan_out":         `{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "fan_in_fan_out": true}`,
		"r must be at least":     `{"peft_type": "LORA", "r": 0, "lora_alpha": 8}`,
		"a list of module names": `{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "target_modules": 3}`,
	} {
		if _, err := ParseConfig([]byte(js)); err == nil || !strings.Contains(err.Error(), frag) {
			t.Errorf("%s: error %v, want one about %q", js, err, frag)
		}
	}
}

func TestWriteRead(t *testing.T) {
	c := testConfig(t, qwenBias)
	base := randomParams(t, c, 3)
	s := Spec{R: 4, Alpha: 8, Targets: Targets{Names: []string{"q_proj", "down_proj"}}, ModulesToSave: []string{"lm_head"}, Bias: BiasLoRAOnly}
	a, err := New(s, c)
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Init(base, 1)
	for i := range a.Flat() {
		a.Flat()[i] += float32(i) * 1e-3
	}
	for _, dt := range []safetensors.DType{safetensors.F32, safetensors.BF16} {
		dir := t.TempDir()
		if err := WriteFiles(dir, a, dt); err != nil {
			t.Fatal(err)
		}
		if !IsAdapterDir(dir) {
			t.Fatal("IsAdapterDir is false for an adapter")
		}
		f, err := safetensors.Open(filepath.Join(dir, WeightsName))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"base_model.model.lm_head.weight",
			"base_model.model.model.layers.0.mlp.down_proj.lora_A.weight",
			"base_model.model.model.layers.0.mlp.down_proj.lora_B.weight",
			"base_model.model.model.layers.0.self_attn.q_proj.bias",
			"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
			"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
		}
		if got := f.Names(); !reflect.DeepEqual(got, want) {
			t.Errorf("tensors %v, want %v", got, want)
		}
		b, err := Read(dir, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.SameLayout(b); err != nil {
			t.Fatal(err)
		}
		for i, x := range a.Flat() {
			y := b.Flat()[i]
			tol := 0.0
			if dt == safetensors.BF16 {
				tol = math.Abs(float64(x)) / 128
			}
			if math.Abs(float64(x-y)) > tol {
				t.Fatalf("%s: value %d read back as %g, wrote %g", dt, i, y, x)
			}
		}
		if b.Spec.R != 4 || b.Spec.Alpha != 8 || b.Spec.Bias != BiasLoRAOnly {
			t.Errorf("spec read back as %+v", b.Spec)
		}
	}
}

// writeRaw writes an adapter directory by hand, as another tool might.
func writeRaw(t *testing.T, config string, tensors map[string][]int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ConfigName), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for name, shape := range tensors {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		ts = append(ts, safetensors.Tensor{Name: name, Shape: shape, Data: make([]float32, n)})
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsName), ts, safetensors.BF16, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadRefuses(t *testing.T) {
	c := testConfig(t, llamaTied)
	cfg := `{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}`
	q := "base_model.model.model.layers.0.self_attn.q_proj."
	for frag, ts := range map[string]map[string][]int64{
		"only one of lora_A and lora_B": {q + "lora_A.weight": {2, 16}},
		"has shape":                     {q + "lora_A.weight": {2, 16}, q + "lora_B.weight": {8, 2}},
		"has rank 3":                    {q + "lora_A.weight": {3, 16}, q + "lora_B.weight": {16, 3}},
		"not a PEFT adapter tensor":     {"model.layers.0.self_attn.q_proj.lora_A.weight": {2, 16}},
		"no tensor lm_head.weight":      {q + "lora_A.weight": {2, 16}, q + "lora_B.weight": {16, 2}, "base_model.model.lm_head.weight": {40, 16}},
		"LoRA on embeddings":            {"base_model.model.model.embed_tokens.lora_embedding_A": {2, 40}},
		"not a decoder projection":      {"base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight": {2, 16}},
		"holds no lora_A/lora_B pairs":  {"base_model.model.model.norm.weight": {16}},
	} {
		if _, err := Read(writeRaw(t, cfg, ts), c); err == nil || !strings.Contains(err.Error(), frag) {
			t.Errorf("%v: error %v, want one saying %q", ts, err, frag)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ConfigName), []byte(cfg), 0o644)
	os.WriteFile(filepath.Join(dir, "adapter_model.bin"), []byte("pickle"), 0o644)
	if _, err := Read(dir, c); err == nil || !strings.Contains(err.Error(), "PyTorch pickle") {
		t.Errorf("a .bin adapter: %v", err)
	}
}

func TestDropoutMasks(t *testing.T) {
	const n, in = 64, 96
	x := make([]float32, n*in)
	for i := range x {
		x[i] = 1
	}
	dst := make([]float32, len(x))
	d := Dropout{Rate: 0.25, Step: StepKey(3, 1), Token0: 5}
	d.Apply(dst, x, n, in, 1, V)
	kept := 0
	for _, v := range dst {
		switch v {
		case 0:
		case KeepScale(0.25):
			kept++
		default:
			t.Fatalf("a kept value became %g", v)
		}
	}
	if f := float64(kept) / float64(len(x)); math.Abs(f-0.75) > 0.03 {
		t.Errorf("kept %.3f of the values at rate 0.25", f)
	}
	// The same (step, module, token, feature) always gives the same
	// decision; another step, module or token another mask.
	again := make([]float32, len(x))
	d.Apply(again, x, n, in, 1, V)
	if !reflect.DeepEqual(dst, again) {
		t.Error("masks are not reproducible")
	}
	part := make([]float32, 10*in)
	Dropout{Rate: 0.25, Step: d.Step, Token0: 5 + 20}.Apply(part, x[:10*in], 10, in, 1, V)
	if !reflect.DeepEqual(part, dst[20*in:30*in]) {
		t.Error("a micro-batch's mask depends on where the pass starts, not on the token's index")
	}
	for what, o := range map[string]Dropout{"step": {Rate: 0.25, Step: StepKey(3, 2), Token0: 5}, "seed": {Rate: 0.25, Step: StepKey(4, 1), Token0: 5}} {
		other := make([]float32, len(x))
		o.Apply(other, x, n, in, 1, V)
		if reflect.DeepEqual(dst, other) {
			t.Errorf("another %s draws the same mask", what)
		}
	}
	other := make([]float32, len(x))
	d.Apply(other, x, n, in, 1, Q)
	if reflect.DeepEqual(dst, other) {
		t.Error("two projections share a mask")
	}
	if Threshold(0) != 0 || !Keep(123, 4, Threshold(0)) {
		t.Error("rate 0 drops something")
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}`))
	f.Add([]byte(`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": "all-linear", "layers_to_transform": [0, 1]}`))
	c := testConfig(f, llamaTied)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseConfig(data)
		if err != nil {
			return
		}
		if s.R < 1 || !(s.Alpha > 0) {
			t.Fatalf("accepted %+v", s)
		}
		raw, err := s.ConfigJSON()
		if err != nil {
			t.Fatalf("accepted %+v but cannot write it: %v", s, err)
		}
		back, err := ParseConfig(raw)
		if err != nil {
			t.Fatalf("cannot read back %s: %v", raw, err)
		}
		if back.R != s.R || back.Alpha != s.Alpha || back.UseRSLoRA != s.UseRSLoRA {
			t.Fatalf("round trip %+v → %+v", s, back)
		}
		// Resolving against a model never panics.
		if s.R < 64 {
			_, _ = New(s, c)
		}
	})
}
