package train

import (
	"fmt"
	"strings"
)

// DType is a floating-point storage or compute type of a precision policy.
type DType string

// The dtypes a precision policy may name.
const (
	F32  DType = "f32"
	BF16 DType = "bf16"
)

// Bytes is the size of one value.
func (d DType) Bytes() int64 {
	if d == BF16 {
		return 2
	}
	return 4
}

func parseDType(s string) (DType, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "f32", "float32", "fp32":
		return F32, true
	case "bf16", "bfloat16":
		return BF16, true
	}
	return "", false
}

// Precision is a training step's precision policy, in the spirit of
// Levanter's jmp policy ("p=f32,c=bfloat16"): the dtype the weights are
// kept in (Params), the dtype the forward and backward passes compute in
// (Compute) and the dtype of AdamW's moments (Optimizer). Weights kept in
// bf16 are updated with Kahan compensation: a bf16 buffer holds what each
// update's rounding lost and adds it back to the next, so updates far below
// bf16's resolution (lr 5e-6 on weights of 0.02) still accumulate.
// Gradients summed over several micro-batches accumulate in float32.
type Precision struct {
	Params, Compute, Optimizer DType
}

// Named policies (the precision key's values besides "p=…,c=…,o=…").
var (
	// PrecisionF32 is float32 throughout: 16 bytes of state per weight.
	PrecisionF32 = Precision{F32, F32, F32}
	// PrecisionMixed is float32 master weights and moments with bf16
	// compute (Levanter's default "p=f32,c=bfloat16"): 16 bytes per weight.
	PrecisionMixed = Precision{F32, BF16, F32}
	// PrecisionLean is bf16 weights with Kahan compensation, bf16 compute
	// and bf16 moments: 10 bytes per weight (12 with a float32 gradient
	// accumulator), what fits an 8B full fine-tune on one 141 GB GPU.
	PrecisionLean = Precision{BF16, BF16, BF16}
)

var precisionNames = map[string]Precision{"f32": PrecisionF32, "mixed": PrecisionMixed, "lean": PrecisionLean}

// ParsePrecision reads a precision policy: "f32", "mixed", "lean", or
// Levanter's form "p=bf16,c=bf16,o=f32" (each key at most once; p, c and o
// default to f32; dtypes f32/float32 and bf16/bfloat16).
func ParsePrecision(s string) (Precision, error) {
	if p, ok := precisionNames[strings.ToLower(strings.TrimSpace(s))]; ok {
		return p, nil
	}
	if !strings.Contains(s, "=") {
		return Precision{}, fmt.Errorf("precision %q: want f32, mixed, lean or a policy such as \"p=bf16,c=bf16,o=f32\"", s)
	}
	p := PrecisionF32
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		d, okd := parseDType(v)
		if !ok || !okd {
			return Precision{}, fmt.Errorf("precision %q: %q is not key=dtype with dtype f32 or bf16", s, strings.TrimSpace(part))
		}
		if seen[k] {
			return Precision{}, fmt.Errorf("precision %q: %s given twice", s, k)
		}
		seen[k] = true
		switch k {
		case "p", "params":
			p.Params = d
		case "c", "compute":
			p.Compute = d
		case "o", "opt", "optimizer":
			p.Optimizer = d
		default:
			return Precision{}, fmt.Errorf("precision %q: unknown key %q (want p, c or o)", s, k)
		}
	}
	if p.Compute == F32 && p.Params == BF16 {
		return Precision{}, fmt.Errorf("precision %q: float32 compute on bf16 weights gains nothing; use c=bf16 or p=f32", s)
	}
	return p, nil
}

// Compensated says whether updates carry a Kahan compensation buffer
// (weights kept in bf16).
func (p Precision) Compensated() bool { return p.Params == BF16 }

// String is the policy's name, or its "p=…,c=…,o=…" form.
func (p Precision) String() string {
	for n, q := range precisionNames {
		if q == p {
			return n
		}
	}
	return fmt.Sprintf("p=%s,c=%s,o=%s", p.Params, p.Compute, p.Optimizer)
}

// Describe spells the policy out for the plan display.
func (p Precision) Describe() string {
	s := fmt.Sprintf("%s (weights %s, compute %s, moments %s", p, p.Params, p.Compute, p.Optimizer)
	if p.Compensated() {
		s += ", Kahan-compensated updates"
	}
	return s + ")"
}
