package kernels

import (
	"runtime"
	"sync"
	"time"
)

// FMAPeak measures the CPU's float32 FMA throughput on the given number of
// threads: each runs a register-only loop of independent fused
// multiply-adds of the widest vectors the CPU has (AVX-512 or AVX2, even
// when a lower level is selected for the kernels), all at once, for about
// the given duration; the result is their total FLOP/s. It is the hardware
// ceiling an sgemm approaches, clock boost included. Each thread's rate is
// taken over the CPU time it received (on Linux), so other processes on a
// busy machine do not lower it. It returns 0 where no such loop exists
// (non-amd64, purego).
func FMAPeak(threads int, d time.Duration) float64 {
	if fmaLoop(1) == 0 {
		return 0
	}
	threads = max(threads, 1)
	// Calibrate: iterations in about a millisecond on this thread.
	n := 1 << 12
	for {
		t0 := time.Now()
		fmaLoop(n)
		if time.Since(t0) > time.Millisecond || n > 1<<30 {
			break
		}
		n *= 2
	}
	per := max(n*int(d/time.Millisecond)/max(threads, 1), n)
	var wg sync.WaitGroup
	flops := make([]float64, threads)
	secs := make([]float64, threads)
	for i := 0; i < threads; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			t0, c0 := time.Now(), threadCPU()
			flops[i] = fmaLoop(per)
			secs[i] = time.Since(t0).Seconds()
			if c := (threadCPU() - c0).Seconds(); c > 0 && c < secs[i] {
				secs[i] = c
			}
		}(i)
	}
	wg.Wait()
	total := 0.0
	for i := range flops {
		total += flops[i] / secs[i]
	}
	return total
}
