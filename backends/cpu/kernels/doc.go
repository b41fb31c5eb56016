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
// of B in L1.
//
// # Instruction sets
//
// The kernels come at three levels (ISA), chosen once from the CPU's
// features (golang.org/x/sys/cpu) and lowered with SetISA or
// $MARIN_CPU_ISA (go, avx2, avx512), which is how the lower levels are
// tested and measured on a machine that has the higher ones:
//
//   - avx512 (AVX-512F): a 6×32 micro-kernel in twelve zmm accumulators that
//     reads two adjacent 16-column micro-panels of packed B at once, so the
//     packing layout is the AVX2 one; the vector kernels (ExpSum, Max,
//     SwiGLU and its backward, AdamWUpdate) in 16 lanes. Each element of C is
//     the same sequence of FMAs as with AVX2, so AVX2 and AVX-512 products
//     are bit-identical.
//   - avx2 (AVX2 and FMA): a 6×16 micro-kernel in twelve ymm accumulators,
//     8-lane vector kernels, and the packing routines (8×8 register
//     transposes), which AVX-512 also uses.
//   - go: pure-Go code of the same shapes, the only level on other
//     architectures and with the purego build tag.
//
// Tests run every kernel at every level the CPU supports against the Go
// ones. FMAPeak measures the CPU's FMA throughput (the ceiling an sgemm
// approaches), which the CPU engine reports MFU against.
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
