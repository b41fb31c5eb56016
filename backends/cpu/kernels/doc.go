// Package kernels holds the float32 compute kernels of the CPU backend: a
// BLAS-style matrix multiply (Sgemm) and the elementwise and reduction
// kernels that the model's hot loops use (exp-and-sum for softmax, SwiGLU
// forward and backward, max, dot and friends).
//
// # Matrix multiply
//
// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where
// op(X) is X or Xᵀ. The three forms a transformer needs are
//
//	Sgemm(false, true, ...)  // C = A·Bᵀ   (a Linear forward: X·Wᵀ with W [out,in])
//	Sgemm(false, false, ...) // C = A·B    (a Linear input gradient: dY·W)
//	Sgemm(true, false, ...)  // C = Aᵀ·B   (a Linear weight gradient: dYᵀ·X)
//
// and Aᵀ·Bᵀ works too. The structure is GotoBLAS/BLIS: C is computed in
// column panels of ncBlock, the shared dimension in slices of kcBlock; each
// slice of op(B) is packed into NR-wide micro-panels (kept in L3), each
// mcBlock-row block of op(A) into MR-row micro-panels (kept in L2), and a
// register-blocked MR×NR micro-kernel does the arithmetic with a micro-panel
// of B in L1. On amd64 with AVX2 and FMA the micro-kernel and the packing
// routines are Go assembly (a 6×16 tile in twelve ymm accumulators; 8×8
// register transposes for packing); elsewhere, or with the purego build tag,
// pure-Go code of the same shape runs. The CPU is probed once with
// golang.org/x/sys/cpu. No AVX-512 micro-kernel is shipped: the machines this
// was written and measured on (AMD EPYC, Zen 3) have no AVX-512, so such a
// kernel could not have been tested, and an untested kernel is worse than
// none. Adding one means a micro-kernel with its own tile (e.g. 6×32 or
// 14×32) selected next to the AVX2 one in sgemm_amd64.go.
//
// With several threads C is split once per call into one part per thread
// (by rows, or by columns when op(B) is the larger operand), and each part
// runs the whole serial algorithm: a single fork and join per call rather
// than one per cache block, which matters on virtual machines where waking
// an idle core takes tens of microseconds.
//
// Building with -tags openblas (cgo, Debian's libopenblas-dev) and
// importing backends/cpu/kernels/openblas links OpenBLAS's sgemm and lets
// SetImpl(ImplOpenBLAS) route Sgemm through it; the default build stays
// cgo-free.
//
// BenchmarkSgemm reports GFLOP/s for the benchmark model's shapes on 1 and
// 2 threads, next to OpenBLAS's in -tags openblas builds (see its comment
// for the command).
//
// # Threads and determinism
//
// Sgemm and ParallelFor use up to Threads() goroutines (default
// runtime.GOMAXPROCS(0); change with SetThreads). Results never depend on the
// thread count: threads split C by rows or column panels, never the shared
// dimension, so every element of C is the same sequence of fused multiply-adds
// in the same order whatever the split. SgemmSerial runs on the calling
// goroutine only, for callers that already parallelise at a coarser grain
// (attention heads).
//
// Invalid shapes or short slices are programming errors and panic with a
// message naming the operand, as BLAS implementations do.
package kernels
