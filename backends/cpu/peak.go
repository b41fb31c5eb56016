package cpu

import (
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/marin-go/marin/backends/cpu/kernels"
)

// PeakEnv overrides the peak used for MFU, in GFLOP/s.
const PeakEnv = "MARIN_CPU_PEAK_GFLOPS"

// PeakFLOPS is the CPU's float32 FLOP/s for MFU (train.Engine.PeakFLOPS of
// the CPU engine): $MARIN_CPU_PEAK_GFLOPS when set, else measured once per
// process by MeasurePeak. It is the hardware's peak, not this package's
// sgemm speed, so MFU says how much of the CPU training uses.
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

// MeasurePeak is the float32 peak of the CPU on kernels.Threads() threads:
// the throughput of a register-only loop of independent fused multiply-adds
// of the widest vectors the CPU has (AVX-512 or AVX2; kernels.FMAPeak, the
// median of five, rated over the CPU time each thread received, so a busy
// machine does not lower it). Where no such loop exists (non-amd64, purego builds)
// it is the best rate of 1024³ multiplies on every sgemm linked in
// (OpenBLAS too in -tags openblas builds), which on a busy machine reads low.
func MeasurePeak() float64 {
	threads := kernels.Threads()
	runs := make([]float64, 5)
	for r := range runs {
		runs[r] = kernels.FMAPeak(threads, 60*time.Millisecond)
	}
	slices.Sort(runs)
	if runs[2] > 0 {
		return runs[2]
	}
	best := 0.0
	saved := kernels.CurrentImpl()
	defer kernels.SetImpl(saved)
	for _, im := range []kernels.Impl{kernels.ImplNative, kernels.ImplOpenBLAS} {
		if kernels.SetImpl(im) == nil { // OpenBLAS only where linked
			best = max(best, sgemmRate())
		}
	}
	return best
}

// sgemmRate is the best FLOP/s of a few 1024³ multiplies on all threads.
func sgemmRate() float64 {
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
