package gomlx

import (
	"os"
	"testing"

	"github.com/marin-go/marin/backends/conformance"
	"github.com/marin-go/marin/backends/cpu"
)

// Tests run on the pure-Go engine, never downloading anything.
func TestMain(m *testing.M) {
	os.Setenv("GOMLX_BACKEND", goEngineConfig)
	os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	os.Exit(m.Run())
}

// engineUnderTest is this package's engine as production makes it.
func engineUnderTest(name string, opts Options) conformance.Engine {
	return conformance.Engine{Name: name, Train: EngineFactory(opts), Decoder: DecoderFactory(opts)}
}

func TestConformance(t *testing.T) {
	conformance.RunAll(t, engineUnderTest("gomlx-go", Options{Engine: EngineGo}))
}

// TestConformanceXLA runs the suite on XLA in float32 when a PJRT plugin is
// configured ($MARIN_PJRT_PLUGIN, as gpucheck.sh does); it never downloads.
func TestConformanceXLA(t *testing.T) {
	if os.Getenv(PJRTPluginEnv) == "" {
		t.Skipf("$%s names no PJRT plugin", PJRTPluginEnv)
	}
	f32 := false
	conformance.RunAll(t, engineUnderTest("gomlx-xla", Options{Engine: EngineXLA, BF16: &f32}))
}

// TestConformanceAgainstCPU checks this engine against the cpu reference
// directly: the same numbers, and runs handed over through checkpoints
// both ways.
func TestConformanceAgainstCPU(t *testing.T) {
	conformance.RunPair(t, engineUnderTest("gomlx-go", Options{Engine: EngineGo}),
		conformance.Engine{Name: "cpu", Train: cpu.NewEngine, Decoder: cpu.NewDecoder})
}

// TestConformanceXLAAgainstCPU is TestConformanceAgainstCPU on XLA in
// float32, when a PJRT plugin is configured (gpucheck.sh).
func TestConformanceXLAAgainstCPU(t *testing.T) {
	if os.Getenv(PJRTPluginEnv) == "" {
		t.Skipf("$%s names no PJRT plugin", PJRTPluginEnv)
	}
	f32 := false
	conformance.RunPair(t, engineUnderTest("gomlx-xla", Options{Engine: EngineXLA, BF16: &f32}),
		conformance.Engine{Name: "cpu", Train: cpu.NewEngine, Decoder: cpu.NewDecoder})
}
