package train

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
)

// MemoryRequest is what one training step's memory on each device depends
// on.
type MemoryRequest struct {
	Model llama.Config
	// Rows is the sequences each device runs through one forward and
	// backward pass (the micro-batch divided among the devices).
	Rows   int
	SeqLen int
	// Precision is the step's policy (PrecisionF32 when zero).
	Precision Precision
	// Checkpointing recomputes each decoder layer's activations in the
	// backward pass instead of keeping them.
	Checkpointing bool
	// Devices is how many devices the weights, gradients and optimizer
	// state are sharded over (FSDP) and the batch is split across.
	Devices int
	// Accumulate: the step sums several micro-batches' gradients (in a
	// float32 buffer).
	Accumulate bool
	// LoRA, when set, freezes the base weights (kept in the compute dtype)
	// and trains an adapter only.
	LoRA *LoRASize
}

// LoRASize is what the memory plan needs of a LoRA adapter: its rank and
// sizes (lora.Measure).
type LoRASize struct {
	R int
	lora.Size
}

// MemoryPlan is the estimated peak memory of one training step on one
// device, by part, in bytes.
//
// The parts are added up as if all were alive at once, and the activation
// and logit terms are what the gomlx engine's graph keeps on GoMLX's pure-Go
// engine (each op's output lives until its last use; broadcasts are
// materialised): TestMemoryPlanMatchesMeasuredPeak checks the estimate
// against measured peaks of real steps there. XLA fuses elementwise ops and
// broadcasts into their consumers, frees activations as gradients appear
// and adds each gradient to the sum as it is made, so it keeps less: on
// accelerators the estimate errs on the safe side (not measured: no GPU
// was at hand).
type MemoryPlan struct {
	Request MemoryRequest
	// Params is the model's parameter count; Trainable how many of them
	// (or of the adapters) the optimizer updates.
	Params, Trainable int64

	Weights   int64 // the model's weights (frozen base and adapters with LoRA)
	Gradients int64 // gradients (and the float32 accumulator when accumulating)
	Optimizer int64 // AdamW's moments, and the Kahan compensation of bf16 weights
	// Activations is what the backward pass needs, as the step runs;
	// ActivationsFull and ActivationsCheckpointed are both variants.
	Activations, ActivationsFull, ActivationsCheckpointed int64
	Logits                                                int64 // the LM head's logits and their gradient
	Workspace                                             int64 // weights gathered or cast for one layer
	// Update is what the AdamW update holds beside the state: the
	// gradients (their float32 sum when accumulating) and float32 scratch
	// for the largest tensor being updated.
	Update int64
	// Peak is the weights, optimizer state and workspace plus the larger
	// of the backward pass (gradients, activations, logits) and the update.
	Peak int64
}

// Per-token activation coefficients of the gomlx graph, per decoder layer
// unless said otherwise, in values of the compute dtype (cb bytes each) or
// in bytes. They were measured on GoMLX's pure-Go engine (each op's output
// lives until its last use, broadcasts are materialised) by varying one
// dimension at a time (TestMemoryPlanMatchesMeasuredPeak's cases):
//
//   - per unit of hidden size D and of q width Q (the norms, residual adds,
//     projections and their RoPE rotations): 5 values each; per unit of
//     k/v width: 2.5 values (k, its rotation, v); per unit of the MLP's
//     width F (gate, up, activation, product): 4.5 values;
//   - the attention map, per head and key: 16 bytes (float32 exponentials
//     and probabilities, the broadcast mask), whatever the compute dtype;
//   - shared by the layers: the embedding lookup and the final norm (4 +
//     6·cb bytes per D), the segment mask (10 bytes per key), RoPE tables
//     (16 bytes per head_dim);
//   - the LM head: 13 bytes per vocabulary entry (float32 logits, their
//     exponentials and gradient).
const (
	perD, perQ, perKV, perF = 5, 5, 2.5, 4.5
	attnPerHeadKey          = 16
	logitsPerVocab          = 13
	// updateScratch is how many float32 copies of the largest trained
	// tensor the update holds at once; bf16 state adds its float32 casts
	// (weight, compensation, moments).
	updateScratch, updateScratchBF16 = 3, 4
)

// PlanMemory estimates r's peak memory per device.
func PlanMemory(r MemoryRequest) (MemoryPlan, error) {
	if r.Rows <= 0 || r.SeqLen <= 0 {
		return MemoryPlan{}, fmt.Errorf("memory plan: %d rows of %d tokens", r.Rows, r.SeqLen)
	}
	if r.Devices <= 0 {
		r.Devices = 1
	}
	if r.Precision == (Precision{}) {
		r.Precision = PrecisionF32
	}
	c := r.Model.Normalized()
	n, err := c.ParamCount()
	if err != nil {
		return MemoryPlan{}, err
	}
	pol := r.Precision
	N := int64(r.Devices)
	cb := pol.Compute.Bytes()
	D, F, V, L := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize), int64(c.NumHiddenLayers)
	Q, K, H := int64(c.NumAttentionHeads*c.HeadDim), int64(c.NumKeyValueHeads*c.HeadDim), int64(c.NumAttentionHeads)
	S, T := int64(r.SeqLen), int64(r.Rows)*int64(r.SeqLen)
	layerParams := (n - V*D*(2-b2i(c.TieWordEmbeddings)) - D) / L

	p := MemoryPlan{Request: r, Params: n}
	shard := func(b int64) int64 { return (b + N - 1) / N }
	largest := max(V*D, F*D, Q*D) // the largest tensor trained
	if r.LoRA == nil {
		p.Trainable = n
		p.Weights = shard(n * pol.Params.Bytes())
	} else {
		p.Trainable = r.LoRA.Params()
		// The frozen base is whole on every device (replicated, as the
		// gomlx engine holds it); only the adapter is sharded.
		p.Weights = (n-r.LoRA.FullParams)*cb + shard(p.Trainable*pol.Params.Bytes())
		largest = r.LoRA.Largest
	}
	// Every gradient of a pass exists at once (the global norm needs them
	// all; accumulation adds them to the float32 sum, which exists too).
	p.Gradients = shard(p.Trainable * pol.Params.Bytes())
	p.Update = p.Gradients
	if r.Accumulate {
		p.Gradients += shard(p.Trainable * 4)
		p.Update = shard(p.Trainable * 4)
	}
	scratch := int64(updateScratch)
	if pol.Params == BF16 || pol.Optimizer == BF16 {
		scratch += updateScratchBF16
	}
	p.Update += shard(scratch * largest * 4)
	p.Optimizer = shard(2 * p.Trainable * pol.Optimizer.Bytes())
	if pol.Compensated() {
		p.Optimizer += shard(p.Trainable * BF16.Bytes())
	}

	// Activations per token.
	perLayer := float64(cb)*(perD*float64(D)+perQ*float64(Q)+perKV*float64(K)+perF*float64(F)) + attnPerHeadKey*float64(H*S)
	boundary := float64(cb * D)
	shared := float64(4*D+6*cb*D) + 10*float64(S) + 16*float64(c.HeadDim)
	p.ActivationsFull = int64(float64(T) * (float64(L)*perLayer + shared))
	// Checkpointing keeps each layer's input and, while one layer's
	// backward runs, that layer's activations and its input's copy.
	p.ActivationsCheckpointed = int64(float64(T) * (float64(L)*boundary + perLayer + boundary + shared))
	if r.LoRA != nil && cb != 4 {
		// An adapted projection computes its update in float32 from a
		// float32 copy of its bf16 input, kept for A's gradient: 4 bytes
		// per input value, every layer's, or one layer's when
		// checkpointing.
		p.ActivationsFull += T * 4 * r.LoRA.In
		p.ActivationsCheckpointed += T * 4 * r.LoRA.MaxLayerIn
	}
	p.Activations = p.ActivationsFull
	if r.Checkpointing {
		p.Activations = p.ActivationsCheckpointed
	}
	p.Logits = T * V * logitsPerVocab

	// Workspace: one layer's weights gathered from their shards (FSDP, with
	// the next one prefetched), and the compute-dtype copies of float32
	// weights (one layer's and the head's).
	// A LoRA step's frozen base is whole and in the compute dtype already:
	// only the tensors it trains in full get compute-dtype copies.
	switch {
	case r.LoRA != nil:
		if pol.Params != pol.Compute {
			p.Workspace += r.LoRA.FullParams * cb
		}
	default:
		if N > 1 {
			p.Workspace += 2 * layerParams * cb
		}
		if pol.Params != pol.Compute {
			p.Workspace += (layerParams + V*D) * cb
		}
	}
	p.Peak = p.Weights + p.Optimizer + p.Workspace + max(p.Gradients+p.Activations+p.Logits, p.Update)
	return p, nil
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Fits says whether the peak is within limit bytes.
func (p MemoryPlan) Fits(limit int64) bool { return limit <= 0 || p.Peak <= limit }

// Summary is the plan in one line.
func (p MemoryPlan) Summary() string {
	r := p.Request
	what := "full fine-tuning"
	if r.LoRA != nil {
		what = fmt.Sprintf("LoRA r=%d", r.LoRA.R)
	}
	ck := "off"
	if r.Checkpointing {
		ck = "per layer"
	}
	return fmt.Sprintf("%s, precision %s, %d × %d tokens per device per pass, activation checkpointing %s, %d device(s): peak %s per device",
		what, r.Precision, r.Rows, r.SeqLen, ck, r.Devices, FormatBytes(p.Peak))
}

// Lines is the plan as the dry run shows it.
func (p MemoryPlan) Lines() []string {
	other := "with checkpointing"
	otherV := p.ActivationsCheckpointed
	if p.Request.Checkpointing {
		other, otherV = "without", p.ActivationsFull
	}
	return []string{
		p.Summary(),
		fmt.Sprintf("  weights %s, gradients %s, optimizer state %s, activations %s (%s: %s), logits %s, workspace %s; the update %s",
			FormatBytes(p.Weights), FormatBytes(p.Gradients), FormatBytes(p.Optimizer), FormatBytes(p.Activations),
			other, FormatBytes(otherV), FormatBytes(p.Logits), FormatBytes(p.Workspace), FormatBytes(p.Update)),
	}
}

// FormatBytes writes n in decimal units (GB = 10⁹ bytes, as accelerator
// memory is sold).
func FormatBytes(n int64) string {
	f := float64(n)
	switch {
	case f >= 1e12:
		return fmt.Sprintf("%.2f TB", f/1e12)
	case f >= 1e9:
		return fmt.Sprintf("%.1f GB", f/1e9)
	case f >= 1e6:
		return fmt.Sprintf("%.1f MB", f/1e6)
	case f >= 1e3:
		return fmt.Sprintf("%.1f kB", f/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

var byteSize = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*$`)

// ParseBytes reads a memory size: "141GB", "141 GB", "80GiB", "512MiB",
// "1.5TB" or a byte count.
func ParseBytes(s string) (int64, error) {
	m := byteSize.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a memory size such as 141GB or 80GiB", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	mult := map[string]float64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}[strings.ToLower(m[2])]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, m[2])
	}
	b := v * mult
	if b < 1 || b > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a plausible memory size", s)
	}
	return int64(b), nil
}
