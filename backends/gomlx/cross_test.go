package gomlx

import (
	"testing"

	"github.com/marin-go/marin/backends/conformance"
	"github.com/marin-go/marin/backends/conformance/cpubackend"
)

// TestConformanceAgainstCPU checks this backend against the cpu reference
// directly: same numbers, and runs handed over through checkpoints both ways.
func TestConformanceAgainstCPU(t *testing.T) {
	conformance.RunPair(t, Conformance(Options{Engine: EngineGo}), cpubackend.Backend())
}
