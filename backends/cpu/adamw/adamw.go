// Package adamw is the CPU engine's AdamW update: global-norm clipping and
// the Adam step with decoupled weight decay over flat float32 tensors, run
// in parallel by backends/cpu/kernels with fixed chunking so results never
// depend on the thread count. Its hyper-parameters, state and schedules are
// backends/model/optim's, shared by every engine.
package adamw

import (
	"fmt"
	"math"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/model/optim"
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

// AdamW is the optimizer. It is not safe for concurrent use.
type AdamW struct {
	Config optim.AdamWConfig
	State  optim.State
}

// NewAdamW returns an optimizer with zero moments for params.
func NewAdamW(cfg optim.AdamWConfig, params []Param) (*AdamW, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
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
func (o *AdamW) Step(params []Param, lr float64) (optim.StepInfo, error) {
	if err := o.check(params); err != nil {
		return optim.StepInfo{}, err
	}
	cfg := o.Config
	norm := GlobalNorm(params)
	info := optim.StepInfo{GradNorm: norm, LR: lr}
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return info, fmt.Errorf("adamw step %d: %w (%g)", o.State.Step, optim.ErrNonFinite, norm)
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

// LoadState replaces the optimizer's state with s, which must hold the same
// parameter names and sizes in the same order.
func (o *AdamW) LoadState(s *optim.State) error {
	if len(s.Names) != len(o.State.Names) {
		return fmt.Errorf("load optimizer state: %d tensors, optimizer has %d", len(s.Names), len(o.State.Names))
	}
	for i, name := range o.State.Names {
		if s.Names[i] != name {
			return fmt.Errorf("load optimizer state: tensor %d is %q, optimizer has %q", i, s.Names[i], name)
		}
		if len(s.M[i]) != len(o.State.M[i]) || len(s.V[i]) != len(o.State.V[i]) {
			return fmt.Errorf("load optimizer state: %q has %d/%d values, optimizer has %d", name, len(s.M[i]), len(s.V[i]), len(o.State.M[i]))
		}
	}
	if s.Step < 0 {
		return fmt.Errorf("load optimizer state: negative step %d", s.Step)
	}
	o.State = *s
	return nil
}
