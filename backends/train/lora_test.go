package train_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/model/safetensors"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/train"
	"github.com/marin-go/marin/backends/train/traintest"
	"github.com/marin-go/marin/plugins/sdk"
)

// pretrained runs the from-scratch test config for 12 steps once per test
// and returns its output (hf/step-12 is the base of the LoRA runs).
func pretrained(t *testing.T, root string) string {
	t.Helper()
	out := filepath.Join(root, "pre")
	if _, err := runJob(t, testConfig(t, root, 12), out, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

// loraConfig is the test config fine-tuning base with LoRA.
func loraConfig(t *testing.T, root, base string, steps int64, lc *train.LoraConfig) *train.Config {
	t.Helper()
	cfg := testConfig(t, root, steps)
	cfg.ModelConfig = nil
	cfg.ModelNameOrPath = &base
	cfg.Lora = lc
	return cfg
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoRARun(t *testing.T) {
	root := t.TempDir()
	pre := pretrained(t, root)
	baseDir := filepath.Join(pre, "hf", "step-12")
	baseBytes := readFile(t, filepath.Join(baseDir, "model.safetensors"))
	lc := &train.LoraConfig{R: 4, Alpha: 8, Dropout: 0.1, TargetModules: "all-linear", Bias: "none", MergeLora: true}
	cfg := loraConfig(t, root, pre, 10, lc)

	whole := filepath.Join(root, "lora")
	j, err := runJob(t, cfg, whole, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := readRows(t, whole)
	if len(want) != 10 || j.Result.FinalEvalLoss == nil {
		t.Fatalf("%d rows, result %+v", len(want), j.Result)
	}
	if !bytes.Equal(baseBytes, readFile(t, filepath.Join(baseDir, "model.safetensors"))) {
		t.Fatal("LoRA training changed its base model's files")
	}

	// The adapter exports: PEFT's layout, naming the base, with marin.json
	// finding it relative to the export.
	ad := filepath.Join(whole, "adapter", "step-10")
	var ac map[string]any
	if err := json.Unmarshal(readFile(t, filepath.Join(ad, lora.ConfigName)), &ac); err != nil {
		t.Fatal(err)
	}
	absBase, _ := filepath.Abs(baseDir)
	for k, v := range map[string]any{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4.0, "lora_alpha": 8.0, "lora_dropout": 0.1,
		"base_model_name_or_path": absBase, "bias": "none",
		"target_modules": []any{"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}} {
		if !reflect.DeepEqual(ac[k], v) {
			t.Errorf("adapter_config.json %s = %v, want %v", k, ac[k], v)
		}
	}
	mi, err := weights.ReadMarinInfo(ad)
	if err != nil || mi == nil || mi.BaseModel != "../../../pre/hf/step-12" || mi.Step != 10 {
		t.Errorf("marin.json %+v, %v", mi, err)
	}
	st, err := safetensors.Open(filepath.Join(ad, lora.WeightsName))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.Names()); n != 2*7*2 || st.Names()[0] != "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight" {
		t.Errorf("adapter tensors %v", st.Names())
	}
	for _, f := range []string{"adapter/step-6/adapter_model.safetensors", "hf/step-6/model.safetensors", "hf/step-10/config.json"} {
		if _, err := os.Stat(filepath.Join(whole, f)); err != nil {
			t.Error(err)
		}
	}
	// Checkpoints hold the adapter and its optimizer state only.
	ck := filepath.Join(whole, "checkpoints", "step-8")
	if _, err := os.Stat(filepath.Join(ck, "model.safetensors")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a LoRA checkpoint holds the model's weights: %v", err)
	}
	f, err := os.Open(filepath.Join(ck, train.OptimizerFile))
	if err != nil {
		t.Fatal(err)
	}
	ost, err := optim.ReadState(f)
	f.Close()
	if err != nil || len(ost.Names) != 2*7*2 || !strings.HasSuffix(ost.Names[0], ".lora_A.weight") || ost.Step != 8 {
		t.Errorf("checkpoint optimizer state: %v %v", ost, err)
	}
	meta, err := train.ReadCheckpointMeta(ck)
	if err != nil || meta.Extra.LoRABase == nil || meta.Extra.LoRABase.Name != pre || meta.Extra.LoRABase.Fingerprint == "" {
		t.Errorf("checkpoint trainer state %+v, %v", meta.Extra, err)
	}

	// The adapter loads as a model (its base, merged) and equals the
	// merged export; the step output resolves to it too.
	merged, info, err := weights.Load(context.Background(), ad, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Base != absBase && info.Base != baseDir {
		t.Errorf("adapter's base loaded from %s", info.Base)
	}
	hf, _, err := weights.LoadDir(filepath.Join(whole, "hf", "step-10"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(merged.Flat(), hf.Flat()) {
		t.Error("the adapter merged on load differs from the merged export")
	}
	if dir, err := weights.FindModelDir(whole); err != nil || dir != filepath.Join(whole, "hf", "step-10") {
		t.Errorf("FindModelDir(step output) = %s, %v", dir, err)
	}

	// Killed and rerun: the same curve (dropout masks included) and the
	// same adapter.
	parts := filepath.Join(root, "lora-parts")
	if _, err := runJob(t, cfg, parts, func(s int64) error {
		if s == 7 {
			return errKilled
		}
		return nil
	}); !errors.Is(err, errKilled) {
		t.Fatalf("first part: %v", err)
	}
	j2, err := runJob(t, cfg, parts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j2.Result.ResumedFrom != 4 {
		t.Errorf("resumed from %d, want 4", j2.Result.ResumedFrom)
	}
	sameCurve(t, want, readRows(t, parts))
	for _, f := range []string{"adapter/step-10/adapter_model.safetensors", "checkpoints/step-10/optimizer.bin", "hf/step-10/model.safetensors"} {
		if !bytes.Equal(readFile(t, filepath.Join(whole, f)), readFile(t, filepath.Join(parts, f))) {
			t.Errorf("%s differs between the runs", f)
		}
	}

	// Continuing from the adapter (initialize_from_checkpoint_path names the
	// LoRA step's output) starts from its values: with learning rate 0 the
	// next adapter is the same.
	cont := loraConfig(t, root, "", 1, lc)
	cont.ModelNameOrPath, cont.InitializeFromCheckpointPath = nil, &whole
	cont.LearningRate, cont.Warmup, cont.LRSchedule, cont.Cooldown = 0, 0, "constant", 0
	contOut := filepath.Join(root, "continued")
	if _, err := runJob(t, cont, contOut, nil); err != nil {
		t.Fatal(err)
	}
	a1 := readAdapter(t, ad, hf.Config)
	a2 := readAdapter(t, filepath.Join(contOut, "adapter", "step-1"), hf.Config)
	if !reflect.DeepEqual(a1.Flat(), a2.Flat()) {
		t.Error("continuing from the adapter did not start from its values")
	}
	if ac2 := readFile(t, filepath.Join(contOut, "adapter", "step-1", lora.ConfigName)); !bytes.Contains(ac2, []byte(absBase)) {
		t.Errorf("the continued adapter does not name the original base: %s", ac2)
	}
	// A lora config laid out otherwise is refused.
	other := *cont
	other.Lora = &train.LoraConfig{R: 2, Alpha: 4, TargetModules: "all-linear", Bias: "none"}
	if _, err := runJob(t, &other, filepath.Join(root, "other"), nil); err == nil || !strings.Contains(err.Error(), "not laid out as this run's lora config") {
		t.Errorf("continuing with r 2 from an r 4 adapter: %v", err)
	}

	// Full fine-tuning from the adapter trains the merged model.
	full := testConfig(t, root, 1)
	full.ModelConfig, full.InitializeFromCheckpointPath = nil, &ad
	full.LearningRate, full.Warmup, full.LRSchedule, full.Cooldown = 0, 0, "constant", 0
	fullOut := filepath.Join(root, "full")
	if _, err := runJob(t, full, fullOut, nil); err != nil {
		t.Fatal(err)
	}
	got, _, err := weights.LoadDir(filepath.Join(fullOut, "hf", "step-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Flat(), hf.Flat()) {
		t.Error("full fine-tuning from an adapter did not start from the merged model")
	}
}

func readAdapter(t *testing.T, dir string, c llama.Config) *lora.Adapter {
	t.Helper()
	a, err := lora.Read(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestLoRAFromForeignAdapter continues training a PEFT adapter made
// elsewhere: PEFT's full adapter_config.json, BF16 tensors, some modules.
func TestLoRAFromForeignAdapter(t *testing.T) {
	root := t.TempDir()
	pre := pretrained(t, root)
	baseDir, _ := filepath.Abs(filepath.Join(pre, "hf", "step-12"))
	base, _, err := weights.LoadDir(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(root, "peft-adapter")
	os.MkdirAll(foreign, 0o755)
	cfgJSON := `{"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "` + baseDir + `",
	  "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
	  "layer_replication": null, "layers_pattern": null, "layers_to_transform": null, "loftq_config": {},
	  "lora_alpha": 16, "lora_dropout": 0.05, "megatron_config": null, "megatron_core": "megatron.core",
	  "modules_to_save": null, "peft_type": "LORA", "r": 4, "rank_pattern": {}, "revision": null,
	  "target_modules": ["v_proj", "q_proj"], "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": false}`
	os.WriteFile(filepath.Join(foreign, lora.ConfigName), []byte(cfgJSON), 0o644)
	spec, _ := lora.ParseConfig([]byte(cfgJSON))
	a, err := lora.New(spec, base.Config)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Flat() {
		a.Flat()[i] = float32(i%13-6) / 64
	}
	var ts []safetensors.Tensor
	for _, tn := range a.Tensors() {
		ts = append(ts, safetensors.Tensor{Name: tn.Name, Shape: []int64{int64(tn.Shape[0]), int64(tn.Shape[1])}, Data: tn.Data})
	}
	if err := safetensors.Write(filepath.Join(foreign, lora.WeightsName), ts, safetensors.BF16, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	lc := &train.LoraConfig{R: 4, Alpha: 16, TargetModules: []any{"q_proj", "v_proj"}, Bias: "none"}
	cfg := loraConfig(t, root, foreign, 1, lc)
	cfg.LearningRate, cfg.Warmup, cfg.LRSchedule, cfg.Cooldown = 0, 0, "constant", 0
	out := filepath.Join(root, "from-foreign")
	if _, err := runJob(t, cfg, out, nil); err != nil {
		t.Fatal(err)
	}
	got := readAdapter(t, filepath.Join(out, "adapter", "step-1"), base.Config)
	if !reflect.DeepEqual(got.Flat(), a.Flat()) { // these values are exact in bf16
		t.Error("training from a PEFT adapter did not start from its values")
	}
	// Another alpha changes the update's scale: refused.
	cfg.Lora = &train.LoraConfig{R: 4, Alpha: 8, TargetModules: []any{"q_proj", "v_proj"}, Bias: "none"}
	if _, err := runJob(t, cfg, filepath.Join(root, "alpha"), nil); err == nil || !strings.Contains(err.Error(), "scale") {
		t.Errorf("another alpha: %v", err)
	}
}

// TestLoRARefusesAChangedBase: a LoRA run resumes only over the base it
// started with.
func TestLoRARefusesAChangedBase(t *testing.T) {
	root := t.TempDir()
	pre := pretrained(t, root)
	baseDir := filepath.Join(pre, "hf", "step-12")
	cfg := loraConfig(t, root, baseDir, 6, &train.LoraConfig{R: 2, Alpha: 4, Bias: "none"})
	out := filepath.Join(root, "lora")
	if _, err := runJob(t, cfg, out, func(s int64) error {
		if s == 5 {
			return errKilled
		}
		return nil
	}); !errors.Is(err, errKilled) {
		t.Fatal(err)
	}
	p, _, err := weights.LoadDir(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	p.Layers[0].Q.Data[0] += 1
	if err := weights.ExportHF(baseDir, p, weights.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := runJob(t, cfg, out, nil); err == nil || !strings.Contains(err.Error(), "changed base") {
		t.Errorf("resuming over a changed base: %v", err)
	}
}

// TestLoRAPlan: the lora config is checked while planning, against the
// model when it is a local directory.
func TestLoRAPlan(t *testing.T) {
	root := t.TempDir()
	base, _ := filepath.Abs(filepath.Join(pretrained(t, root), "hf", "step-12"))
	op := train.Op(train.EngineSpec{Name: "cpu", Devices: []string{"auto", "cpu"}})
	plan := func(edit func(m map[string]any)) *sdk.PlanResult {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(traintest.Config(t, root, 3), &m); err != nil {
			t.Fatal(err)
		}
		m["model_config"] = nil
		m["model_name_or_path"] = base
		m["lora"] = map[string]any{"r": 4, "alpha": 8, "target_modules": "all-linear"}
		edit(m)
		res, err := sdk.CallPlan(context.Background(), op, &sdk.PlanRequest{Op: train.OpName, Config: m})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := plan(func(map[string]any) {})
	if len(res.Diagnostics) != 0 || len(res.Notes) < 2 || !strings.Contains(res.Notes[1], "LoRA: r 4 over 14 projections") {
		t.Errorf("a valid LoRA config: %v, notes %q", res.Diagnostics, res.Notes)
	}
	for _, c := range []struct {
		edit       func(m map[string]any)
		attr, frag string
	}{
		{func(m map[string]any) { m["lora"].(map[string]any)["target_modules"] = []any{"c_attn"} }, "lora.target_modules", "matches no linear projection"},
		{func(m map[string]any) { m["lora"].(map[string]any)["target_modules"] = 5.0 }, "lora.target_modules", "want a module name list"},
		{func(m map[string]any) { m["lora"].(map[string]any)["target_modules"] = []any{"embed_tokens"} }, "lora.target_modules", "modules_to_save"},
		{func(m map[string]any) { m["lora"].(map[string]any)["modules_to_save"] = []any{"score"} }, "lora.modules_to_save", "matches no module"},
		{func(m map[string]any) {
			m["model_name_or_path"] = nil
			m["model_config"] = map[string]any{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 48}
		}, "lora", "model_config trains a new model"},
	} {
		res := plan(c.edit)
		if len(res.Diagnostics) != 1 || res.Diagnostics[0].Attribute != c.attr || !strings.Contains(res.Diagnostics[0].Summary, c.frag) {
			for _, d := range res.Diagnostics {
				t.Logf("diagnostic %s: %s", d.Attribute, d.Summary)
			}
			t.Errorf("want one diagnostic on %s saying %q", c.attr, c.frag)
		}
	}
}
