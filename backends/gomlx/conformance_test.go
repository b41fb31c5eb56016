package gomlx

import (
	"os"
	"testing"

	"github.com/marin-go/marin/backends/conformance"
)

// Tests run on the pure-Go engine, never downloading anything.
func TestMain(m *testing.M) {
	os.Setenv("GOMLX_BACKEND", goEngineConfig)
	os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	conformance.RunAll(t, Conformance(Options{Engine: EngineGo}))
}

// TestConformanceXLA runs the suite on XLA in float32 when a PJRT plugin is
// configured ($MARIN_PJRT_PLUGIN, as gpucheck.sh does); it never downloads.
func TestConformanceXLA(t *testing.T) {
	if os.Getenv(PJRTPluginEnv) == "" {
		t.Skipf("$%s names no PJRT plugin", PJRTPluginEnv)
	}
	f32 := false
	conformance.RunAll(t, Conformance(Options{Engine: EngineXLA, BF16: &f32}))
}
