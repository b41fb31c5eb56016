package optim

import (
	"errors"
	"fmt"
	"strings"
)

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

// Validate reports hyper-parameters AdamW cannot use.
func (c AdamWConfig) Validate() error {
	if !(c.Beta1 >= 0 && c.Beta1 < 1) || !(c.Beta2 >= 0 && c.Beta2 < 1) {
		return fmt.Errorf("adamw: betas (%g, %g) must be in [0, 1)", c.Beta1, c.Beta2)
	}
	if !(c.Epsilon >= 0) || !(c.WeightDecay >= 0) {
		return fmt.Errorf("adamw: epsilon %g and weight decay %g must be non-negative", c.Epsilon, c.WeightDecay)
	}
	return nil
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

// ErrNonFinite is returned (wrapped) by Step when the gradient norm is NaN
// or infinite; nothing is updated.
var ErrNonFinite = errors.New("gradient norm is not finite")

// StepInfo reports one update.
type StepInfo struct {
	GradNorm float64 // global L2 norm of the gradients before clipping
	Clipped  bool    // the gradients were scaled down to MaxGradNorm
	LR       float64 // the learning rate applied
}
