package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

var threads atomic.Int32

func init() { threads.Store(int32(runtime.GOMAXPROCS(0))) }

// Threads reports how many goroutines Sgemm and ParallelFor use.
func Threads() int { return int(threads.Load()) }

// SetThreads sets how many goroutines Sgemm and ParallelFor use (at least 1)
// and returns the previous setting. Results do not depend on it.
func SetThreads(n int) int {
	if n < 1 {
		n = 1
	}
	return int(threads.Swap(int32(n)))
}

// ParallelFor calls fn(worker, i) once for every i in [0, n), spread over up
// to Threads() goroutines, and returns when all calls have returned. worker is
// in [0, Threads()) and no two concurrent calls share one, so it can index
// per-worker scratch space. Which worker runs which i is not fixed: fn's
// effect must depend on i alone for results to be deterministic.
func ParallelFor(n int, fn func(worker, i int)) {
	ParallelForThreads(Threads(), n, fn)
}

// ParallelForThreads is ParallelFor with an explicit goroutine count.
func ParallelForThreads(nThreads, n int, fn func(worker, i int)) {
	if n <= 0 {
		return
	}
	if nThreads > n {
		nThreads = n
	}
	if nThreads <= 1 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(nThreads - 1)
	work := func(w int) {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			fn(w, i)
		}
	}
	for w := 1; w < nThreads; w++ {
		go func(w int) {
			defer wg.Done()
			work(w)
		}(w)
	}
	work(0)
	wg.Wait()
}

// ParallelRange splits [0, n) into contiguous chunks of at least grain
// elements (a few per thread) and calls fn(lo, hi) for each, in parallel. It
// suits elementwise loops whose per-element result does not depend on the
// chunking.
func ParallelRange(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	t := Threads()
	if grain < 1 {
		grain = 1
	}
	chunks := 4 * t
	if maxChunks := (n + grain - 1) / grain; chunks > maxChunks {
		chunks = maxChunks
	}
	if chunks <= 1 {
		fn(0, n)
		return
	}
	size := (n + chunks - 1) / chunks
	ParallelForThreads(t, chunks, func(_, c int) {
		lo := c * size
		hi := min(lo+size, n)
		if lo < hi {
			fn(lo, hi)
		}
	})
}
