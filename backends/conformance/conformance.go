// Package conformance is the test suite every engine passes, in the
// style of GoMLX's backendtest: each engine's own package runs it on the
// interfaces production uses —
//
//	func TestConformance(t *testing.T) {
//		conformance.RunAll(t, conformance.Engine{Name: "cpu", Train: cpu.NewEngine, Decoder: cpu.NewDecoder})
//	}
//
// — the train.EngineFactory the train op drives and the
// sample.DecoderFactory generation and evaluation drive. RunPair(t, a, b)
// checks two engines against each other: the same numbers, and a run
// handed from one to the other through a checkpoint (backends/gomlx runs
// it with backends/cpu).
//
// The references are a plain float64 Llama written from Hugging Face's
// modeling code and central finite differences (oracle.go), so an engine is
// checked against the maths, not against another engine's bugs. Models are
// tiny (a few thousand parameters) so the suite runs in seconds on a CPU.
// Checkpoints and hf/ exports go through the code the train op uses
// (backends/train, backends/model/weights).
//
// Tolerances (float32 engines): losses within 1e-5 relative; gradients
// within 1e-4·max(1, |g|) element-wise; weights after 10 AdamW steps
// (clipping, weight decay, z-loss, micro-batches) within 1e-4; decoder
// logits within 1e-4·max(1, |z|); greedy decoding token for token;
// checkpoints written by one engine resume on the other and continue the
// same run.
//
// LoRA (lora.go) gets the same checks with an engine training an adapter
// over frozen weights (train.Setup.LoRA): adapted losses, adapter gradients
// against the oracle's finite differences (dropout and z-loss included),
// 10 steps with the frozen base unchanged in the merged weights, and
// adapter checkpoints (train.SaveAdapterCheckpoint) resumed on the same or
// the other engine with identical dropout masks.
package conformance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/sample"
	"github.com/marin-go/marin/backends/train"
)

// Engine is an engine under test, made the way production makes it.
type Engine struct {
	Name string
	// Train makes the engine's train.Engine (what the train op drives).
	Train train.EngineFactory
	// Decoder makes the engine's decoder (what generation and evaluation
	// drive).
	Decoder sample.DecoderFactory
}

// Decays reports whether AdamW's weight decay applies to parameter name:
// the oracle's own statement of Levanter's mask (projections and an
// untied lm_head; not embeddings, norms or biases).
func Decays(name string) bool {
	return strings.HasSuffix(name, "_proj.weight") || name == "lm_head.weight"
}

// Fixture is a model configuration and weights the suite tests with.
type Fixture struct {
	Name    string
	Config  string // config.json
	Weights map[string][]float32
}

// Fixtures returns the suite's models: a Llama 3 with GQA, tied embeddings
// and llama3 rope scaling (every branch of it), and a Qwen2-style model
// with q/k/v biases, an untied head and plain RoPE.
func Fixtures() []Fixture {
	llama := `{"model_type": "llama", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24,
	  "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
	  "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000, "tie_word_embeddings": true,
	  "max_position_embeddings": 128,
	  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
	    "original_max_position_embeddings": 64}}`
	qwen := `{"model_type": "qwen2", "vocab_size": 36, "hidden_size": 12, "intermediate_size": 20,
	  "num_hidden_layers": 1, "num_attention_heads": 3, "num_key_value_heads": 3,
	  "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 1000000, "tie_word_embeddings": false,
	  "max_position_embeddings": 128}`
	return []Fixture{
		{Name: "llama3-gqa-tied", Config: llama, Weights: RandomWeights(llama, 1)},
		{Name: "qwen2-bias-untied", Config: qwen, Weights: RandomWeights(qwen, 2)},
	}
}

// TrainFixture is the small model the 10-step and resume tests train.
func TrainFixture() Fixture {
	c := `{"model_type": "llama", "vocab_size": 24, "hidden_size": 8, "intermediate_size": 12,
	  "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
	  "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000, "tie_word_embeddings": false,
	  "max_position_embeddings": 128}`
	return Fixture{Name: "tiny-untied", Config: c, Weights: RandomWeights(c, 3)}
}

// ParamShapes lists a config's parameters (HF names) and shapes.
func ParamShapes(configJSON string) (map[string][]int, error) {
	c, err := parseOracleConfig([]byte(configJSON))
	if err != nil {
		return nil, err
	}
	D, F, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	qd, kvd := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	out := map[string][]int{"model.embed_tokens.weight": {V, D}, "model.norm.weight": {D}}
	if !c.TieWordEmbeddings {
		out["lm_head.weight"] = []int{V, D}
	}
	qkvBias := c.ModelType == "qwen2" || c.AttentionBias
	for l := range c.NumHiddenLayers {
		p := fmt.Sprintf("model.layers.%d.", l)
		out[p+"input_layernorm.weight"] = []int{D}
		out[p+"post_attention_layernorm.weight"] = []int{D}
		out[p+"self_attn.q_proj.weight"] = []int{qd, D}
		out[p+"self_attn.k_proj.weight"] = []int{kvd, D}
		out[p+"self_attn.v_proj.weight"] = []int{kvd, D}
		out[p+"self_attn.o_proj.weight"] = []int{D, qd}
		out[p+"mlp.gate_proj.weight"] = []int{F, D}
		out[p+"mlp.up_proj.weight"] = []int{F, D}
		out[p+"mlp.down_proj.weight"] = []int{D, F}
		if qkvBias {
			out[p+"self_attn.q_proj.bias"] = []int{qd}
			out[p+"self_attn.k_proj.bias"] = []int{kvd}
			out[p+"self_attn.v_proj.bias"] = []int{kvd}
		}
		if c.ModelType != "qwen2" && c.AttentionBias {
			out[p+"self_attn.o_proj.bias"] = []int{D}
		}
		if c.MLPBias {
			out[p+"mlp.gate_proj.bias"] = []int{F}
			out[p+"mlp.up_proj.bias"] = []int{F}
			out[p+"mlp.down_proj.bias"] = []int{D}
		}
	}
	return out, nil
}

// RandomWeights draws weights large enough that attention and the MLP do
// real work: matrices N(0, 0.3²), norms 1+N(0, 0.1²), biases N(0, 0.1²).
func RandomWeights(configJSON string, seed uint64) map[string][]float32 {
	shapes, err := ParamShapes(configJSON)
	if err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(seed, 77))
	out := map[string][]float32{}
	for _, name := range sortedKeys(shapes) {
		n := 1
		for _, d := range shapes[name] {
			n *= d
		}
		w := make([]float32, n)
		for i := range w {
			switch {
			case strings.HasSuffix(name, "norm.weight"):
				w[i] = float32(1 + 0.1*rng.NormFloat64())
			case strings.HasSuffix(name, ".bias"):
				w[i] = float32(0.1 * rng.NormFloat64())
			default:
				w[i] = float32(0.3 * rng.NormFloat64())
			}
		}
		out[name] = w
	}
	return out
}

// Params returns the fixture as llama.Params (for an engine factory).
func (f Fixture) Params(t testing.TB) *llama.Params {
	t.Helper()
	cfg, err := llama.ParseConfig([]byte(f.Config))
	if err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	p, err := llama.NewParams(cfg)
	if err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	for _, tn := range p.Tensors() {
		w, ok := f.Weights[tn.Name]
		if !ok || len(w) != len(tn.Data) {
			t.Fatalf("%s: llama.Params has %s %v, the fixture's weights do not", f.Name, tn.Name, tn.Shape)
		}
		copy(tn.Data, w)
	}
	if len(p.Tensors()) != len(f.Weights) {
		t.Fatalf("%s: llama.Params has %d tensors, the fixture %d", f.Name, len(p.Tensors()), len(f.Weights))
	}
	return p
}

// TestBatch returns a packed batch over vocab: row 0 holds two documents,
// row 1 one document and padding (token 0, segment −1, mask off);
// positions restart at each document.
func TestBatch(vocab int, seed uint64) *llama.Batch {
	const B, S = 2, 9
	rng := rand.New(rand.NewPCG(seed, 99))
	b := llama.NewBatch(B, S)
	docs := [][]int{{5, 4}, {7}} // document lengths per row; the rest is padding
	for r, lens := range docs {
		t := 0
		for seg, n := range lens {
			for i := range n {
				k := r*S + t
				b.Tokens[k] = int32(1 + rng.IntN(vocab-1))
				b.Segments[k] = int32(seg)
				b.Positions[k] = int32(i)
				// Some prompt tokens untrained.
				b.LossMask[k] = i < n-1 && (i > 0 || seg == 0)
				t++
			}
		}
		for ; t < S; t++ {
			b.Segments[r*S+t] = -1
		}
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// relErr is |a−b| / max(|b|, tiny).
func relErr(a, b float64) float64 {
	return math.Abs(a-b) / math.Max(math.Abs(b), 1e-30)
}
