//go:build amd64 && !purego

package kernels

//go:noescape
func fmaLoopAVX512(n int)

//go:noescape
func fmaLoopAVX2(n int)

// fmaLoop runs n iterations of the widest register-only FMA loop the CPU
// has and returns the FLOPs done (0 when there is none).
func fmaLoop(n int) float64 {
	switch bestISA() {
	case ISAAVX512:
		fmaLoopAVX512(n)
		return float64(n) * 24 * 16 * 2
	case ISAAVX2:
		fmaLoopAVX2(n)
		return float64(n) * 12 * 8 * 2
	}
	return 0
}
