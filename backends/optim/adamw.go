package optim

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/marin-go/marin/backends/kernels"
)

// chunk is the number of elements one parallel work item handles; fixed so
// that reductions never depend on the thread count.
const chunk = 1 << 16

// Param is a parameter tensor with its gradient, both flat.
type Param struct {
	Name  string
	Data  []float32
	Grad  []float32
	Decay bool // weight decay applies (see LevanterWeightDecay)
}

// AdamWConfig holds AdamW's hyper-parameters (the learning rate comes from
// a Schedule at each step).
type AdamWConfig struct {
	Beta1, Beta2 float64
	Epsilon      float64
	WeightDecay  float64
	// MaxGradNorm clips the global gradient norm to this value; 0 or less
	// disables clipping.
	MaxGradNorm float64
}

// DefaultAdamW is Levanter's and Marin's SFT default: β1 0.9, β2 0.95,
// ε 1e-8, max_grad_norm 1.0, no weight decay (SimpleSFTConfig's 0.0).
func DefaultAdamW() AdamWConfig {
	return AdamWConfig{Beta1: 0.9, Beta2: 0.95, Epsilon: 1e-8, MaxGradNorm: 1}
}

// LevanterWeightDecay is Levanter's default weight-decay mask translated to
// Hugging Face parameter names: no decay for embeddings (a name containing
// "embed"), norm weights (containing "norm") and biases (ending ".bias");
// decay for everything else — the attention and MLP projection matrices and
// an untied lm_head. (Levanter's reasonable_default excludes module paths
// containing LayerNorm, RMSNorm or Embedding and paths ending in "bias".)
func LevanterWeightDecay(name string) bool {
	switch {
	case strings.HasSuffix(name, "bias"):
		return false
	case strings.Contains(name, "norm"):
		return false
	case strings.Contains(name, "embed"):
		return false
	}
	return true
}

// State is AdamW's state: the number of updates applied and the first and
// second moments of each parameter, by name.
type State struct {
	Step  int64
	Names []string
	M, V  [][]float32
}

// AdamW is the optimizer. It is not safe for concurrent use.
type AdamW struct {
	Config AdamWConfig
	State  State
}

// ErrNonFinite is returned (wrapped) by Step when the gradient norm is NaN
// or infinite; nothing is updated.
var ErrNonFinite = errors.New("gradient norm is not finite")

// NewAdamW returns an optimizer with zero moments for params.
func NewAdamW(cfg AdamWConfig, params []Param) (*AdamW, error) {
	if !(cfg.Beta1 >= 0 && cfg.Beta1 < 1) || !(cfg.Beta2 >= 0 && cfg.Beta2 < 1) {
		return nil, fmt.Errorf("adamw: betas (%g, %g) must be in [0, 1)", cfg.Beta1, cfg.Beta2)
	}
	if !(cfg.Epsilon >= 0) || !(cfg.WeightDecay >= 0) {
		return nil, fmt.Errorf("adamw: epsilon %g and weight decay %g must be non-negative", cfg.Epsilon, cfg.WeightDecay)
	}
	o := &AdamW{Config: cfg}
	seen := map[string]bool{}
	for _, p := range params {
		if seen[p.Name] {
			return nil, fmt.Errorf("adamw: parameter %q listed twice", p.Name)
		}
		seen[p.Name] = true
		if len(p.Grad) != len(p.Data) {
			return nil, fmt.Errorf("adamw: parameter %q has %d values and %d gradients", p.Name, len(p.Data), len(p.Grad))
		}
		o.State.Names = append(o.State.Names, p.Name)
		o.State.M = append(o.State.M, make([]float32, len(p.Data)))
		o.State.V = append(o.State.V, make([]float32, len(p.Data)))
	}
	return o, nil
}

// StepInfo reports one update.
type StepInfo struct {
	GradNorm float64 // global L2 norm of the gradients before clipping
	Clipped  bool    // the gradients were scaled down to MaxGradNorm
	LR       float64 // the learning rate applied
}

// GlobalNorm returns the L2 norm of all gradients together, summed in
// float64 over fixed chunks in a fixed order.
func GlobalNorm(params []Param) float64 {
	type item struct{ p, lo, hi int }
	var items []item
	for i, p := range params {
		for lo := 0; lo < len(p.Grad); lo += chunk {
			items = append(items, item{i, lo, min(lo+chunk, len(p.Grad))})
		}
	}
	partial := make([]float64, len(items))
	kernels.ParallelFor(len(items), func(_, j int) {
		it := items[j]
		var s float64
		for _, g := range params[it.p].Grad[it.lo:it.hi] {
			s += float64(g) * float64(g)
		}
		partial[j] = s
	})
	var total float64
	for _, s := range partial {
		total += s
	}
	return math.Sqrt(total)
}

// Step clips the gradients, updates the moments and applies one AdamW
// update with learning rate lr to params, which must be the list (same
// names, order and sizes) the optimizer was made or restored for. The
// gradients are left as they were (unclipped).
func (o *AdamW) Step(params []Param, lr float64) (StepInfo, error) {
	if err := o.check(params); err != nil {
		return StepInfo{}, err
	}
	cfg := o.Config
	norm := GlobalNorm(params)
	info := StepInfo{GradNorm: norm, LR: lr}
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return info, fmt.Errorf("adamw step %d: %w (%g)", o.State.Step, ErrNonFinite, norm)
	}
	// optax scales by max_norm/‖g‖ when ‖g‖ ≥ max_norm.
	clip := cfg.MaxGradNorm > 0 && !(norm < cfg.MaxGradNorm)
	info.Clipped = clip
	t := float64(o.State.Step + 1)
	c := kernels.AdamWConsts{
		Clip:   1,
		Beta1:  float32(cfg.Beta1),
		Beta2:  float32(cfg.Beta2),
		InvBC1: float32(1 / (1 - math.Pow(cfg.Beta1, t))),
		InvBC2: float32(1 / (1 - math.Pow(cfg.Beta2, t))),
		Eps:    float32(cfg.Epsilon),
		LR:     float32(lr),
	}
	if clip {
		c.Clip = float32(cfg.MaxGradNorm / norm)
	}
	wd := float32(cfg.WeightDecay)

	type item struct{ p, lo, hi int }
	var items []item
	for i, p := range params {
		for lo := 0; lo < len(p.Data); lo += chunk {
			items = append(items, item{i, lo, min(lo+chunk, len(p.Data))})
		}
	}
	kernels.ParallelFor(len(items), func(_, j int) {
		it := items[j]
		p := params[it.p]
		cc := c
		if p.Decay {
			cc.WeightDecay = wd
		}
		kernels.AdamWUpdate(p.Data[it.lo:it.hi], p.Grad[it.lo:it.hi], o.State.M[it.p][it.lo:it.hi], o.State.V[it.p][it.lo:it.hi], cc)
	})
	o.State.Step++
	return info, nil
}

func (o *AdamW) check(params []Param) error {
	if len(params) != len(o.State.Names) {
		return fmt.Errorf("adamw: %d parameters, optimizer state has %d", len(params), len(o.State.Names))
	}
	for i, p := range params {
		if p.Name != o.State.Names[i] {
			return fmt.Errorf("adamw: parameter %d is %q, optimizer state has %q", i, p.Name, o.State.Names[i])
		}
		if len(p.Data) != len(o.State.M[i]) || len(p.Grad) != len(p.Data) {
			return fmt.Errorf("adamw: parameter %q has %d values and %d gradients, optimizer state has %d", p.Name, len(p.Data), len(p.Grad), len(o.State.M[i]))
		}
	}
	return nil
}
