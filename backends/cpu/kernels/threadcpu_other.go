//go:build !linux

package kernels

import "time"

// threadCPU is not available here; FMAPeak falls back to wall time.
func threadCPU() time.Duration { return 0 }
