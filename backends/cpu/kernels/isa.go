package kernels

import (
	"fmt"
	"os"
	"strings"
)

// ISA names an instruction-set level of the kernels. Each level's kernels
// are tested against the portable Go ones on every CPU that has it.
type ISA int

const (
	// ISAGo is the portable Go code (every platform; the purego build).
	ISAGo ISA = iota
	// ISAAVX2 is AVX2 with FMA: the 6×16 micro-kernel and 8-lane vector kernels.
	ISAAVX2
	// ISAAVX512 is AVX-512F: the 6×32 micro-kernel and 16-lane vector
	// kernels (packing stays AVX2).
	ISAAVX512
)

var isaNames = [...]string{ISAGo: "go", ISAAVX2: "avx2", ISAAVX512: "avx512"}

func (i ISA) String() string {
	if i >= 0 && int(i) < len(isaNames) {
		return isaNames[i]
	}
	return fmt.Sprintf("ISA(%d)", int(i))
}

// ISAEnv, when set (go, avx2 or avx512), caps the level the kernels use;
// benchmarks use it to measure a lower level on a CPU that has a higher one.
const ISAEnv = "MARIN_CPU_ISA"

// isa is the level in use: the best the CPU supports, or less after
// SetISA or $MARIN_CPU_ISA.
var isa = initISA()

func initISA() ISA {
	best := bestISA()
	v := strings.TrimSpace(os.Getenv(ISAEnv))
	if v == "" {
		return best
	}
	for i, n := range isaNames {
		if strings.EqualFold(v, n) && ISA(i) <= best {
			return ISA(i)
		}
	}
	fmt.Fprintf(os.Stderr, "kernels: ignoring %s=%q (this CPU supports up to %v)\n", ISAEnv, v, best)
	return best
}

// SupportedISAs lists the levels this CPU (and build) can run, lowest first.
func SupportedISAs() []ISA {
	var out []ISA
	for i := ISAGo; i <= bestISA(); i++ {
		out = append(out, i)
	}
	return out
}

// CurrentISA reports the level in use.
func CurrentISA() ISA { return isa }

// SetISA chooses the level the kernels use; it fails if the CPU (or the
// build) lacks it. It is not safe to call while kernels are running.
func SetISA(i ISA) error {
	if i < ISAGo || i > bestISA() {
		return fmt.Errorf("kernels: ISA %v not supported here (best: %v)", i, bestISA())
	}
	isa = i
	return nil
}

// MicroKernel names the sgemm micro-kernel in use ("avx512-6x32",
// "avx2-fma-6x16" or "go-6x16").
func MicroKernel() string {
	switch isa {
	case ISAAVX512:
		return "avx512-6x32"
	case ISAAVX2:
		return "avx2-fma-6x16"
	}
	return "go-6x16"
}
