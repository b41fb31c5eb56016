// Package openblas links OpenBLAS's sgemm through cgo, for comparison with
// and as an alternative to the native kernels. It is empty unless built with
// -tags openblas (and cgo, with Debian's libopenblas-dev installed):
//
//	apt-get install -y libopenblas-dev
//	go test -tags openblas ./backends/cpu/kernels/...
//
// Importing it registers OpenBLAS with kernels.RegisterOpenBLAS, so
// kernels.SetImpl(kernels.ImplOpenBLAS) routes every Sgemm through it.
// OpenBLAS reads OPENBLAS_CORETYPE to pick its kernels; unset it to let it
// use the best ones for the CPU.
package openblas
