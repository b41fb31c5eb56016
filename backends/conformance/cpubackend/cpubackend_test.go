package cpubackend

import (
	"testing"

	"github.com/marin-go/marin/backends/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunAll(t, Backend())
}
