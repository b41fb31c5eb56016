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
