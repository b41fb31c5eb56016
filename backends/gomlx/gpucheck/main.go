// Command gpucheck measures the gomlx backend's training throughput:
//
//	go run ./backends/gomlx/gpucheck -engine xla -pjrt /abs/path/pjrt_c_api_gpu_plugin.so -peak-tflops 989
//	go run ./backends/gomlx/gpucheck -engine go -model small -batch 4 -seq 256
//
// It prints tokens/s and, given the device's peak bf16 TFLOP/s, the model
// FLOPs utilisation (MFU). gpucheck.sh beside it runs the conformance
// suite first and looks the peak up from the card's name.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/marin-go/marin/backends/gomlx"
)

func main() {
	engine := flag.String("engine", "xla", "go or xla")
	pjrt := flag.String("pjrt", "", "absolute path of the PJRT plugin (xla); default $MARIN_PJRT_PLUGIN")
	model := flag.String("model", "1b", "1b (Llama 3.2 1B architecture) or small")
	batch := flag.Int("batch", 8, "sequences per step")
	seq := flag.Int("seq", 512, "sequence length")
	warmup := flag.Int("warmup", 2, "untimed steps (the first compiles)")
	steps := flag.Int("steps", 10, "timed steps")
	peak := flag.Float64("peak-tflops", 0, "device peak dense bf16 TFLOP/s for MFU (0: no MFU)")
	bf16 := flag.Bool("bf16", true, "bf16 compute with f32 master weights (xla)")
	flag.Parse()

	cfg := gomlx.Llama1B
	if *model == "small" {
		cfg = gomlx.BenchSmall
	} else if *model != "1b" {
		fail(fmt.Errorf("unknown -model %q", *model))
	}
	useBF16 := *bf16 && *engine == gomlx.EngineXLA
	opts := gomlx.Options{Engine: *engine, PJRTPlugin: *pjrt, BF16: &useBF16}
	fmt.Printf("gpucheck: model %s (%.3gB params), batch %d×%d, engine %s, bf16 %v\n",
		*model, float64(cfg.NumParams())/1e9, *batch, *seq, *engine, useBF16)
	r, err := gomlx.Bench(context.Background(), cfg, opts, *batch, *seq, *warmup, *steps)
	if err != nil {
		fail(err)
	}
	fmt.Printf("first step (compile) %.1fs, step %.3fs, loss %.4f\n", r.CompileTime.Seconds(), r.StepTime.Seconds(), r.Loss)
	fmt.Printf("tokens/s %.0f\n", r.TokensPerSec)
	fmt.Printf("model TFLOP/s %.2f\n", r.FLOPsPerSec/1e12)
	if *peak > 0 {
		fmt.Printf("MFU %.1f%% of %.0f bf16 TFLOP/s\n", 100*r.FLOPsPerSec/(*peak*1e12), *peak)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gpucheck:", err)
	os.Exit(1)
}
