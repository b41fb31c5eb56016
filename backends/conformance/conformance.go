// Package conformance is the test suite every training backend passes, in
// the style of GoMLX's backendtest: a backend implements Backend (usually
// through a small adapter in its own package) and its tests call
// RunAll(t, backend); a test that links two backends calls RunPair(t, a, b)
// to check they agree with each other and can take over each other's runs.
//
// The references are a plain float64 Llama written from Hugging Face's
// modeling code and central finite differences (oracle.go), so a backend is
// checked against the maths, not against another backend's bugs. Models are
// tiny (a few thousand parameters) so the suite runs in seconds on a CPU.
//
// Tolerances (float32 backends): losses within 1e-5 relative; gradients
// within 1e-4·max(1, |g|) element-wise; weights after 10 AdamW steps within
// 1e-4; greedy decoding token for token; checkpoints and hf/ exports
// written by one backend load in the other and continue the same run.
package conformance

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Batch is a batch of packed sequences; every slice is flat [BatchSize·SeqLen].
type Batch struct {
	BatchSize, SeqLen int
	Tokens            []int32
	// LossMask weighs predicting Tokens[t+1] at position t (already shifted);
	// the last position of every row is 0.
	LossMask   []float32
	SegmentIDs []int32 // attention stays inside a segment; padding is −1
	// Positions are RoPE positions; nil means each token's index inside its
	// segment (restarting at every document; 0 for padding).
	Positions []int32
}

// Optim is AdamW as Levanter configures it through optax: clip by global
// norm, Adam with bias correction, weight_decay·w added on the decayed
// weights (linear layers' weights and an untied lm_head; not embeddings,
// norms or biases), times −lr.
type Optim struct {
	Beta1, Beta2, Eps, WeightDecay, MaxGradNorm float64
	// ZLossWeight adds ZLossWeight·logsumexp² per trained token to the
	// objective being minimised (Levanter's z_loss_weight).
	ZLossWeight float64
}

// Decays reports whether AdamW's weight decay applies to parameter name.
func Decays(name string) bool {
	return strings.HasSuffix(name, "_proj.weight") || name == "lm_head.weight"
}

// Backend opens models. Weights are float32, row-major, with Hugging Face
// names (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight
// [out, in], …, lm_head.weight when untied).
type Backend interface {
	Name() string
	// Open places a model given config.json's content and its weights.
	Open(ctx context.Context, configJSON []byte, weights map[string][]float32) (Model, error)
	// LoadCheckpoint resumes from a checkpoint directory written by
	// Model.SaveCheckpoint of any conforming backend.
	LoadCheckpoint(ctx context.Context, dir string) (Model, error)
	// LoadHF opens an hf/ export (config.json + safetensors).
	LoadHF(ctx context.Context, dir string) (Model, error)
}

// Model is one model with its optimizer state.
type Model interface {
	// LossAndGrads returns the mean objective over trained tokens
	// (cross-entropy plus zLoss·logsumexp²) and its gradient.
	LossAndGrads(ctx context.Context, b Batch, zLoss float64) (float64, map[string][]float32, error)
	// TrainStep applies one AdamW step at learning rate lr and returns the
	// mean cross-entropy (without z-loss) before the update.
	TrainStep(ctx context.Context, b Batch, opt Optim, lr float64) (float64, error)
	Weights(ctx context.Context) (map[string][]float32, error)
	// Greedy extends prompt by n argmax tokens (ties go to the lowest id).
	Greedy(ctx context.Context, prompt []int32, n int) ([]int32, error)
	SaveCheckpoint(ctx context.Context, dir string) error
	ExportHF(ctx context.Context, dir string) error
	Close() error
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

// TestBatch returns a packed batch over vocab: row 0 holds two documents,
// row 1 one document and padding (token 0, segment −1, mask 0); positions
// restart at each document.
func TestBatch(vocab int, seed uint64) Batch {
	const B, S = 2, 9
	rng := rand.New(rand.NewPCG(seed, 99))
	b := Batch{BatchSize: B, SeqLen: S, Tokens: make([]int32, B*S), LossMask: make([]float32, B*S),
		SegmentIDs: make([]int32, B*S), Positions: make([]int32, B*S)}
	docs := [][]int{{5, 4}, {7}} // document lengths per row; the rest is padding
	for r, lens := range docs {
		t := 0
		for seg, n := range lens {
			for i := range n {
				k := r*S + t
				b.Tokens[k] = int32(1 + rng.IntN(vocab-1))
				b.SegmentIDs[k] = int32(seg)
				b.Positions[k] = int32(i)
				if i < n-1 && (i > 0 || seg == 0) { // some prompt tokens untrained
					b.LossMask[k] = 1
				}
				t++
			}
		}
		for ; t < S; t++ {
			b.SegmentIDs[r*S+t] = -1
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
