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
// slice of op(B) is packed once into NR-wide micro-panels shared by all
// threads, each thread packs MR-row micro-panels of op(A) for its own mcBlock
// rows, and a register-blocked MR×NR micro-kernel does the arithmetic. On
// amd64 with AVX2 and FMA the micro-kernel is Go assembly (6×16, twelve ymm
// accumulators); elsewhere, or with the purego build tag, a pure-Go
// micro-kernel of the same shape runs. The CPU is probed once with
// golang.org/x/sys/cpu. (No AVX-512 micro-kernel is shipped: the machines this
// was written and measured on, AMD Zen 3, have no AVX-512, and an untested
// kernel is worse than none.)
//
// Building with -tags openblas (cgo, Debian's libopenblas-dev) adds
// OpenBLASSgemm and lets SetImpl(ImplOpenBLAS) route Sgemm through OpenBLAS;
// the default build stays cgo-free.
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
