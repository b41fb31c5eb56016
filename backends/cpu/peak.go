package cpu

import (
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/marin-go/marin/backends/cpu/kernels"
)

// PeakEnv overrides the measured peak used for MFU, in GFLOP/s.
const PeakEnv = "MARIN_CPU_PEAK_GFLOPS"

// PeakFLOPS is the CPU's float32 FLOP/s for MFU: $MARIN_CPU_PEAK_GFLOPS
// when set, else measured once per process.
func PeakFLOPS() float64 {
	peakOnce.Do(func() { peak = measuredPeak() })
	return peak
}

var (
	peakOnce sync.Once
	peak     float64
)

func measuredPeak() float64 {
	if v, err := strconv.ParseFloat(os.Getenv(PeakEnv), 64); err == nil && v > 0 {
		return v * 1e9
	}
	return MeasurePeak()
}

// MeasurePeak is the best float32 FLOP/s of a few 1024³ matrix multiplies
// on all threads: the figure MFU is reported against on the CPU. On a busy
// machine it reads low (and MFU high); set MARIN_CPU_PEAK_GFLOPS to fix it.
func MeasurePeak() float64 {
	const n = 1024
	a := make([]float32, n*n)
	b := make([]float32, n*n)
	c := make([]float32, n*n)
	for i := range a {
		a[i] = float32(i%97) * 1e-3
		b[i] = float32(i%89) * 1e-3
	}
	best := 0.0
	for r := 0; r < 6; r++ {
		t0 := time.Now()
		kernels.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
		if g := 2 * n * n * n / time.Since(t0).Seconds(); g > best {
			best = g
		}
	}
	return best
}
