package cpu

import (
	"testing"

	"github.com/marin-go/marin/backends/conformance"
)

// TestConformance runs the engine suite on the CPU engine through the
// factories production uses.
func TestConformance(t *testing.T) {
	conformance.RunAll(t, conformance.Engine{Name: "cpu", Train: NewEngine, Decoder: NewDecoder})
}
