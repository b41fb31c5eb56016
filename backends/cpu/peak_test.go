package cpu

import (
	"testing"

	"github.com/marin-go/marin/backends/cpu/kernels"
)

// TestMeasurePeak: the peak MFU is reported against is the hardware's, at
// least what the package's own sgemm reaches (never that rate itself where
// an FMA loop exists).
func TestMeasurePeak(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the CPU for about a second")
	}
	p := MeasurePeak()
	s := sgemmRate()
	t.Logf("peak %.1f GFLOP/s on %d threads (ISA %v); native sgemm 1024³ %.1f GFLOP/s", p/1e9, kernels.Threads(), kernels.CurrentISA(), s/1e9)
	if p <= 0 {
		t.Fatal("no peak")
	}
	if p < 0.9*s {
		t.Fatalf("peak %.1f GFLOP/s is below the sgemm rate %.1f", p/1e9, s/1e9)
	}
}

func TestPeakEnv(t *testing.T) {
	t.Setenv(PeakEnv, "123.5")
	if got := measuredPeak(); got != 123.5e9 {
		t.Fatalf("measuredPeak with %s=123.5: %g", PeakEnv, got)
	}
}
