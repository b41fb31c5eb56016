package train

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/marin-go/marin/plugins/sdk"
)

func TestParsePrecision(t *testing.T) {
	for in, want := range map[string]Precision{
		"f32": PrecisionF32, "mixed": PrecisionMixed, "lean": PrecisionLean, " Lean ": PrecisionLean,
		"p=f32,c=bfloat16":                        PrecisionMixed,
		"p=bf16,c=bf16,o=f32":                     {BF16, BF16, F32},
		"c=bf16, o=bf16":                          {F32, BF16, BF16},
		"params=bf16,compute=bf16,optimizer=bf16": PrecisionLean,
	} {
		got, err := ParsePrecision(in)
		if err != nil || got != want {
			t.Errorf("ParsePrecision(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fp8", "p=f16", "p=bf16,p=f32", "x=f32", "p=bf16,c=f32", "p"} {
		if _, err := ParsePrecision(in); err == nil {
			t.Errorf("ParsePrecision(%q) accepted", in)
		}
	}
	if s := (Precision{BF16, BF16, F32}).String(); s != "p=bf16,c=bf16,o=f32" {
		t.Errorf("String() = %q", s)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"141GB": 141e9, "141 GB": 141e9, "80GiB": 80 << 30, "1.5TB": 15e11, "4096": 4096, "512MiB": 512 << 20, "16g": 16e9} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "12 parsecs", "-5GB", "0"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) accepted", in)
		}
	}
}

func llama8B(t *testing.T) HubModel {
	t.Helper()
	hm, ok, err := KnownHubModel("meta-llama/Llama-3.1-8B")
	if err != nil || !ok {
		t.Fatalf("Llama-3.1-8B is not shipped: %v", err)
	}
	return hm
}

func TestShippedHubModels(t *testing.T) {
	hm := llama8B(t)
	if n := hm.Config.NumParams(); n != 8030261248 {
		t.Errorf("Llama-3.1-8B has %d parameters, want 8030261248", n)
	}
	if len(hm.Revision) != 40 {
		t.Errorf("revision %q is not a commit", hm.Revision)
	}
	if _, ok, _ := KnownHubModel("meta-llama/Llama-3.1-8B@" + hm.Revision); !ok {
		t.Error("the pinned revision is not known")
	}
	if _, ok, _ := KnownHubModel("meta-llama/Llama-3.1-8B@0123456789012345678901234567890123456789"); ok {
		t.Error("another revision of the model was taken for the shipped one")
	}
	if _, ok, _ := KnownHubModel("someone/else"); ok {
		t.Error("an unknown model was found")
	}
}

// The 8B plans of issue 13: one 141 GB device at 4096 tokens per sequence,
// batch 128 in micro-batches.
func TestMemoryPlanOf8B(t *testing.T) {
	c := llama8B(t).Config
	const gpu = 141e9
	plan := func(pol Precision, ckpt bool, rows, devices int, l *LoRASize) MemoryPlan {
		p, err := PlanMemory(MemoryRequest{Model: c, Rows: rows, SeqLen: 4096, Precision: pol, Checkpointing: ckpt, Devices: devices, Accumulate: true, LoRA: l})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", strings.Join(p.Lines(), "\n"))
		return p
	}
	f32 := plan(PrecisionF32, true, 1, 1, nil)
	if f32.Fits(gpu) || f32.Weights+f32.Gradients+f32.Optimizer < 128e9 {
		t.Errorf("f32 full fine-tuning of 8B fits 141 GB: %s", f32.Summary())
	}
	if m := plan(PrecisionMixed, true, 1, 1, nil); m.Fits(gpu) {
		t.Errorf("mixed full fine-tuning of 8B fits 141 GB: %s", m.Summary())
	}
	lean := plan(PrecisionLean, true, 1, 1, nil)
	if !lean.Fits(gpu) {
		t.Errorf("lean full fine-tuning of 8B does not fit 141 GB: %s", lean.Summary())
	}
	// 2 bytes of weights, 2 of compensation, 4 of moments and 4 of the
	// float32 gradient sum per parameter.
	if got := lean.Weights + lean.Optimizer; got != 8*lean.Params {
		t.Errorf("lean weights and optimizer state %d, want %d", got, 8*lean.Params)
	}
	if noCkpt := plan(PrecisionLean, false, 1, 1, nil); noCkpt.Fits(gpu) || noCkpt.ActivationsFull != lean.ActivationsFull || lean.ActivationsCheckpointed*5 > lean.ActivationsFull {
		t.Errorf("without checkpointing: %s", noCkpt.Summary())
	}
	lr := plan(PrecisionLean, true, 1, 1, defaultLoRA(c))
	if !lr.Fits(gpu) || lr.Trainable != 41943040 || lr.Peak > lean.Peak/2 {
		t.Errorf("LoRA r=16: %d trainable, %s", lr.Trainable, lr.Summary())
	}
	// LoRA over eight devices: the adapter's state is sharded, the frozen
	// bf16 base is whole on each.
	lr8 := plan(PrecisionLean, true, 1, 8, defaultLoRA(c))
	if lr8.Weights < 2*(lr8.Params-lr8.Trainable) || lr8.Optimizer*7 > lr.Optimizer || !lr8.Fits(gpu) {
		t.Errorf("LoRA r=16 over 8 devices: %s", lr8.Summary())
	}
	// Eight devices: the state is sharded, the activations are one row's.
	eight := plan(PrecisionF32, true, 1, 8, nil)
	if !eight.Fits(gpu) || eight.Optimizer*8 < f32.Optimizer || eight.Activations != f32.Activations {
		t.Errorf("f32 over 8 devices: %s", eight.Summary())
	}
}

// The plan's LoRA sizes are PEFT's adapter's, without allocating it.
func TestLoRASizeOf8B(t *testing.T) {
	c := llama8B(t).Config
	cfg := &Config{Lora: &LoraConfig{R: 8, Alpha: 16, TargetModules: []string{"q_proj", "v_proj"}, ModulesToSave: []string{"embed_tokens"}}}
	s := loraSizeOf(cfg, c)
	if s == nil {
		t.Fatal("no LoRA size")
	}
	// q: 8·(4096+4096), v: 8·(1024+4096), 32 layers.
	if want := int64(32 * 8 * (8192 + 5120)); s.Factors != want || s.FullParams != 128256*4096 || s.Largest != 128256*4096 {
		t.Errorf("factors %d (want %d), full %d, largest %d", s.Factors, want, s.FullParams, s.Largest)
	}
	cfg.Lora.TargetModules = []string{"qkv"}
	if loraSizeOf(cfg, c) != nil {
		t.Error("an unknown module was measured")
	}
}

// planStep runs the train op's Plan hook on a config.
func planStep(t *testing.T, e EngineSpec, cfg map[string]any) *sdk.PlanResult {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Op(e).Plan(context.Background(), &sdk.PlanRequest{Op: OpName, StepName: "checkpoints/x", ConfigJSON: raw, Prefix: "/nowhere"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// An engine that runs any precision with checkpointing, as gomlx does.
var leanEngine = EngineSpec{Name: "test", Devices: []string{"auto"},
	Profile: func(cfg *Config) (Profile, error) {
		p := PrecisionF32
		if cfg.Precision != "" {
			var err error
			if p, err = ParsePrecision(cfg.Precision); err != nil {
				return Profile{}, err
			}
		}
		return Profile{Precision: p, Checkpointing: cfg.GradientCheckpointing != nil && *cfg.GradientCheckpointing, Devices: cfg.Resources.NumDevices}, nil
	}}

func exp606Config(precision string, extra map[string]any) map[string]any {
	cfg := map[string]any{
		"data":               map[string]any{"components": map[string]any{"t": map[string]any{"cache": "/nowhere/tok", "weight": 1}}, "max_seq_len": 4096},
		"model_name_or_path": "meta-llama/Llama-3.1-8B", "max_seq_len": 4096, "train_batch_size": 128, "num_train_steps": 3834,
		"precision": precision, "gradient_checkpointing": true,
		"resources": map[string]any{"backend": "test", "device_memory": "141GB"},
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

func TestPlanRefusesWhatDoesNotFit(t *testing.T) {
	res := planStep(t, leanEngine, exp606Config("f32", nil))
	if len(res.Diagnostics) != 1 || res.Diagnostics[0].Attribute != "precision" ||
		!strings.Contains(res.Diagnostics[0].Summary, "exceeds resources.device_memory 141.0 GB") {
		t.Fatalf("f32 8B on 141 GB: %+v\n%s", res.Diagnostics, strings.Join(res.Notes, "\n"))
	}
	t.Log(res.Diagnostics[0].Summary)

	res = planStep(t, leanEngine, exp606Config("lean", nil))
	if len(res.Diagnostics) != 0 {
		t.Fatalf("lean 8B on 141 GB: %v", res.Diagnostics[0])
	}
	notes := strings.Join(res.Notes, "\n")
	t.Log(notes)
	for _, want := range []string{"8.03e+03M parameters", "Llama-3.1-8B@d04e592", "memory plan: full fine-tuning, precision lean", "(fits 141.0 GB)",
		"micro-batch 1 of 128", "f32 full fine-tuning", "(does not fit)", "LoRA r=16 all-linear (lean)"} {
		if !strings.Contains(notes, want) {
			t.Errorf("the plan does not say %q", want)
		}
	}

	// A LoRA step (issue 12's lora key) is planned with its adapters.
	res = planStep(t, leanEngine, exp606Config("f32", map[string]any{"lora": map[string]any{"r": 8, "alpha": 16, "target_modules": "all-linear"}}))
	if len(res.Diagnostics) != 0 || !strings.Contains(strings.Join(res.Notes, "\n"), "memory plan: LoRA r=8") {
		t.Fatalf("LoRA: %v\n%s", res.Diagnostics, strings.Join(res.Notes, "\n"))
	}

	// Over 8 devices f32 fits; a bad memory size is the resources' error.
	res = planStep(t, leanEngine, exp606Config("f32", map[string]any{"resources": map[string]any{"device_memory": "141GB", "num_devices": 8}}))
	if len(res.Diagnostics) != 0 {
		t.Fatalf("f32 over 8 devices: %v", res.Diagnostics[0])
	}
	res = planStep(t, leanEngine, exp606Config("lean", map[string]any{"resources": map[string]any{"device_memory": "plenty"}}))
	if len(res.Diagnostics) != 1 || res.Diagnostics[0].Attribute != "resources.device_memory" {
		t.Fatalf("bad device_memory: %v", res.Diagnostics)
	}
}

// An engine without a Profile trains in float32 without checkpointing, and
// says so at plan time.
func TestFloat32OnlyEngineRefusesOtherPolicies(t *testing.T) {
	res := planStep(t, EngineSpec{Name: "cpu", Devices: []string{"auto"}}, exp606Config("lean", nil))
	if len(res.Diagnostics) != 1 || res.Diagnostics[0].Attribute != "precision" || !strings.Contains(res.Diagnostics[0].Summary, "float32 only") {
		t.Fatalf("%v", res.Diagnostics)
	}
	res = planStep(t, EngineSpec{Name: "cpu", Devices: []string{"auto"}}, exp606Config("", nil))
	if len(res.Diagnostics) != 1 || res.Diagnostics[0].Attribute != "gradient_checkpointing" {
		t.Fatalf("%v", res.Diagnostics)
	}
}
