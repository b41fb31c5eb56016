// Command gpucheck runs the gomlx engine's checks on an accelerator and
// writes their figures as JSON lines (-out). gpucheck.sh beside it runs
// them all in order on a GPU machine; each mode also runs on the CPU
// (-engine go) at small sizes, which is how it is tested without a GPU.
//
//	gpucheck -mode bench  -model 1b -batch 8 -seq 512    training throughput and MFU (bf16)
//	gpucheck -mode fit    -model 8b -seq 4096 -steps 3   a full fine-tune step of Llama-3.1-8B in the lean policy: tokens/s
//	gpucheck -mode export -dir D                          train a small model, export D/hf, write our logits for compare_hf.py
//
// MFU is reported against the device's measured bf16 matmul rate (a
// 4096³ product) and, given -peak-tflops, against the data sheet's.
// Device memory is measured outside (gpucheck.sh samples nvidia-smi with
// XLA's preallocation off).
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/marin-go/marin/backends/gomlx"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/safetensors"
	"github.com/marin-go/marin/backends/model/sample"
	"github.com/marin-go/marin/backends/train"
)

func main() {
	mode := flag.String("mode", "bench", "bench, fit or export")
	engine := flag.String("engine", "xla", "go or xla")
	pjrt := flag.String("pjrt", "", "absolute path of the PJRT plugin (xla); default $MARIN_PJRT_PLUGIN")
	model := flag.String("model", "", "1b (Llama 3.2 1B's architecture), 8b (Llama-3.1-8B's), small or tiny (default: 1b for bench, 8b for fit)")
	batch := flag.Int("batch", 8, "sequences per step (fit: 1)")
	seq := flag.Int("seq", 512, "sequence length (fit: 4096)")
	warmup := flag.Int("warmup", 2, "untimed steps (the first compiles)")
	steps := flag.Int("steps", 10, "timed steps")
	peak := flag.Float64("peak-tflops", 0, "the data sheet's dense bf16 TFLOP/s, for a second MFU figure (0: none)")
	precision := flag.String("precision", "", "precision policy (bench default mixed on xla; fit default lean)")
	devices := flag.Int("devices", 0, "devices to train on (0: all)")
	loraR := flag.Int("lora", 0, "fit: train a LoRA adapter of this rank over every linear projection (alpha 2r) instead of every weight (0: full fine-tuning)")
	dir := flag.String("dir", "", "export: the directory to write hf/ and our logits into")
	out := flag.String("out", "", "append the figures as JSON lines to this file (default: stdout only)")
	flag.Parse()

	opts := gomlx.Options{Engine: *engine, PJRTPlugin: *pjrt, Devices: *devices}
	var err error
	switch *mode {
	case "bench":
		err = bench(opts, pick(*model, "1b"), *precision, *batch, *seq, *warmup, *steps, *peak, *out)
	case "fit":
		if !flagSet("batch") {
			*batch = 1
		}
		if !flagSet("seq") {
			*seq = 4096
		}
		if !flagSet("steps") {
			*steps = 3
		}
		err = fit(opts, pick(*model, "8b"), pick(*precision, "lean"), *loraR, *batch, *seq, *steps, *out)
	case "export":
		err = export(opts, pick(*model, "tiny"), *dir, *out)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpucheck:", err)
		os.Exit(1)
	}
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func pick(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// modelConfig returns a named architecture.
func modelConfig(name string) (llama.Config, error) {
	switch name {
	case "1b":
		return gomlx.Llama1B, nil
	case "8b":
		hm, ok, err := train.KnownHubModel("meta-llama/Llama-3.1-8B")
		if err != nil || !ok {
			return llama.Config{}, fmt.Errorf("the shipped Llama-3.1-8B config: %v", err)
		}
		return hm.Config, nil
	case "small":
		return gomlx.BenchSmall, nil
	case "tiny":
		return llama.Config{ModelType: "llama", VocabSize: 512, HiddenSize: 64, IntermediateSize: 172, NumHiddenLayers: 2,
			NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 16, HiddenAct: "silu", MaxPositionEmbeddings: 256,
			RMSNormEps: 1e-5, RopeTheta: 500000, TieWordEmbeddings: false,
			RopeScaling: &llama.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 64}}, nil
	}
	return llama.Config{}, fmt.Errorf("unknown -model %q (1b, 8b, small, tiny)", name)
}

func withPrecision(opts gomlx.Options, p string) (gomlx.Options, error) {
	if p == "" {
		return opts, nil
	}
	pol, err := train.ParsePrecision(p)
	opts.Precision = pol
	return opts, err
}

// record prints a figure line and appends it to out.
func record(out string, fig map[string]any) error {
	fig["time"] = time.Now().UTC().Format(time.RFC3339)
	line, err := json.Marshal(fig)
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	if out == "" {
		return nil
	}
	f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// bench measures training throughput and MFU.
func bench(opts gomlx.Options, model, precision string, batch, seq, warmup, steps int, peak float64, out string) error {
	cfg, err := modelConfig(model)
	if err != nil {
		return err
	}
	if opts, err = withPrecision(opts, precision); err != nil {
		return err
	}
	fmt.Printf("gpucheck bench: model %s (%.3gB params), batch %d×%d, engine %s\n", model, float64(cfg.NumParams())/1e9, batch, seq, opts.Engine)
	r, err := gomlx.Bench(context.Background(), cfg, opts, batch, seq, warmup, steps)
	if err != nil {
		return err
	}
	measured, err := gomlx.MatmulPeak(opts)
	if err != nil {
		return err
	}
	fig := map[string]any{"check": "bench", "model": model, "params": r.Params, "batch": batch, "seq": seq, "engine": opts.Engine,
		"precision": r.Precision, "compile_s": r.CompileTime.Seconds(), "step_s": r.StepTime.Seconds(), "loss": r.Loss,
		"tokens_per_s": r.TokensPerSec, "model_tflops": r.FLOPsPerSec / 1e12, "matmul_tflops_measured": measured / 1e12}
	if measured > 0 {
		fig["mfu_vs_measured_matmul"] = r.FLOPsPerSec / measured
	}
	if peak > 0 {
		fig["mfu_vs_datasheet"] = r.FLOPsPerSec / (peak * 1e12)
		fig["datasheet_tflops"] = peak
	}
	return record(out, fig)
}

// fit runs steps fine-tuning steps (every weight, or a LoRA adapter of rank
// loraR) of a random-init model at seq tokens per sequence and reports
// their speed and the memory plan's estimate (the measured peak comes from
// outside).
func fit(opts gomlx.Options, model, precision string, loraR, batch, seq, steps int, out string) error {
	cfg, err := modelConfig(model)
	if err != nil {
		return err
	}
	if opts, err = withPrecision(opts, precision); err != nil {
		return err
	}
	on := true
	opts.Checkpointing = &on
	req := train.MemoryRequest{Model: cfg, Rows: batch, SeqLen: seq, Precision: opts.Precision, Checkpointing: true, Devices: 1}
	var spec *lora.Spec
	if loraR > 0 {
		spec = &lora.Spec{R: loraR, Alpha: float64(2 * loraR), Targets: lora.Targets{Pattern: lora.AllLinear}}
		size, err := lora.Measure(*spec, cfg)
		if err != nil {
			return err
		}
		req.LoRA = &train.LoRASize{R: loraR, Size: size}
	}
	plan, err := train.PlanMemory(req)
	if err != nil {
		return err
	}
	fmt.Printf("gpucheck fit: model %s (%.3gB params), %d×%d tokens, %s, LoRA r %d; plan: %s\n", model, float64(cfg.NumParams())/1e9, batch, seq, opts.Precision, loraR, plan.Summary())
	t0 := time.Now()
	r, err := gomlx.BenchLoRA(context.Background(), cfg, opts, spec, batch, seq, 1, steps)
	if err != nil {
		return err
	}
	return record(out, map[string]any{"check": "fit", "model": model, "params": r.Params, "lora_r": loraR, "trainable": plan.Trainable, "batch": batch, "seq": seq, "engine": opts.Engine,
		"precision": r.Precision, "checkpointing": true, "first_step_s": r.CompileTime.Seconds(), "step_s": r.StepTime.Seconds(),
		"tokens_per_s": r.TokensPerSec, "loss": r.Loss, "planned_peak_bytes": plan.Peak, "wall_s": time.Since(t0).Seconds()})
}

// export trains a small model for a few steps, exports it to dir/hf and
// writes our float32 logits for a few prompts (dir/ours.json: tokens and
// shapes; dir/ours_logits.f32: little-endian values) for compare_hf.py;
// then the same for a LoRA adapter over the export (dir/adapter,
// dir/ours_lora_logits.f32).
func export(opts gomlx.Options, model, dir, out string) error {
	if dir == "" {
		return fmt.Errorf("export needs -dir")
	}
	cfg, err := modelConfig(model)
	if err != nil {
		return err
	}
	ctx := context.Background()
	p, err := llama.InitParams(cfg, 1)
	if err != nil {
		return err
	}
	m, err := gomlx.New(p, opts)
	if err != nil {
		return err
	}
	var loss float64
	for s := range 20 {
		r, _, err := m.TrainStep(ctx, 3e-3, gomlx.BenchBatch(cfg, 4, 64, uint64(s%3)))
		if err != nil {
			m.Close()
			return err
		}
		loss = r.Mean()
	}
	hf := filepath.Join(dir, "hf")
	err = m.ExportHF(ctx, hf)
	m.Close()
	if err != nil {
		return err
	}
	// Logits of the export, read back, in float32.
	f32 := false
	ropts := opts
	ropts.BF16, ropts.Precision = &f32, train.Precision{}
	rm, err := gomlx.LoadHF(hf, ropts)
	if err != nil {
		return err
	}
	prompts := [][]int32{{1, 5, 9, 200, 17, 3, 44, 12}, {7, 7, 7, 100, 250, 3, 2, 1, 0, 8, 9, 10}}
	err = writeLogits(ctx, rm, prompts, filepath.Join(dir, "ours_logits.f32"))
	var base *llama.Params
	if err == nil {
		base, err = rm.Params()
	}
	rm.Close()
	if err != nil {
		return err
	}
	// A LoRA adapter over the exported model, trained a few steps, written
	// in PEFT's layout to dir/adapter, and our logits of the base with it
	// merged (compare_hf.py runs the adapter through peft).
	loraLoss, err := exportAdapter(ctx, opts, ropts, base, prompts, dir)
	if err != nil {
		return fmt.Errorf("LoRA adapter: %w", err)
	}
	meta, _ := json.Marshal(map[string]any{"prompts": prompts, "vocab": cfg.VocabSize, "engine": opts.Engine})
	if err := os.WriteFile(filepath.Join(dir, "ours.json"), meta, 0o644); err != nil {
		return err
	}
	return record(out, map[string]any{"check": "export", "model": model, "params": cfg.NumParams(), "engine": opts.Engine, "train_loss": loss, "lora_train_loss": loraLoss, "dir": dir})
}

// exportAdapter trains a LoRA adapter (r 4, all-linear) over base with opts, writes it to dir/adapter and the logits of the
// merged model (decoded with ropts) to dir/ours_lora_logits.f32.
func exportAdapter(ctx context.Context, opts, ropts gomlx.Options, base *llama.Params, prompts [][]int32, dir string) (float64, error) {
	spec := lora.Spec{R: 4, Alpha: 8, Targets: lora.Targets{Pattern: lora.AllLinear}}
	a, err := lora.New(spec, base.Config)
	if err != nil {
		return 0, err
	}
	if err := a.Init(base, 7); err != nil {
		return 0, err
	}
	lm, err := gomlx.NewLoRA(base, a, opts, 1)
	if err != nil {
		return 0, err
	}
	var loss float64
	for s := range 10 {
		r, _, err := lm.TrainStep(ctx, 1e-2, gomlx.BenchBatch(base.Config, 4, 64, uint64(10+s%3)))
		if err != nil {
			lm.Close()
			return 0, err
		}
		loss = r.Mean()
	}
	trained, err := lm.Adapter()
	lm.Close()
	if err != nil {
		return 0, err
	}
	adir := filepath.Join(dir, "adapter")
	if err := os.MkdirAll(adir, 0o755); err != nil {
		return 0, err
	}
	if err := lora.WriteFiles(adir, trained, safetensors.F32); err != nil {
		return 0, err
	}
	merged, err := trained.Merge(base)
	if err != nil {
		return 0, err
	}
	mm, err := gomlx.New(merged, ropts)
	if err != nil {
		return 0, err
	}
	defer mm.Close()
	return loss, writeLogits(ctx, mm, prompts, filepath.Join(dir, "ours_lora_logits.f32"))
}

// writeLogits writes m's float32 logits after every token of each prompt
// to path (little-endian values, prompt after prompt).
func writeLogits(ctx context.Context, m *gomlx.Model, prompts [][]int32, path string) error {
	var all []float32
	for _, pr := range prompts {
		dec, err := m.NewDecoder(1, 0)
		if err != nil {
			return err
		}
		lg, err := dec.Feed(ctx, [][]int32{pr}, sample.Every)
		dec.Close()
		if err != nil {
			return err
		}
		all = append(all, lg[0]...)
	}
	buf := make([]byte, 4*len(all))
	for i, v := range all {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return os.WriteFile(path, buf, 0o644)
}
