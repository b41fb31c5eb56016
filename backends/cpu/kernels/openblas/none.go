//go:build !openblas || !cgo

package openblas

// Linked is true in builds that link OpenBLAS.
const Linked = false
