package llama

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
)

// Config describes a Llama-family decoder. Its JSON field names are Hugging
// Face's (LlamaConfig, Qwen2Config, MistralConfig), so a model's config.json
// unmarshals into it directly; use ParseConfig to get HF's defaults for
// absent fields. Fields the CPU backend does not use (torch_dtype, token ids)
// are kept so that a config read and written back loses nothing that
// transformers needs.
type Config struct {
	ModelType     string   `json:"model_type,omitempty"` // "llama" (default), "qwen2", "mistral"
	Architectures []string `json:"architectures,omitempty"`

	HiddenSize        int `json:"hidden_size"`
	IntermediateSize  int `json:"intermediate_size"`
	NumHiddenLayers   int `json:"num_hidden_layers"`
	NumAttentionHeads int `json:"num_attention_heads"`
	// NumKeyValueHeads < NumAttentionHeads is grouped-query attention; 0
	// means NumAttentionHeads.
	NumKeyValueHeads int `json:"num_key_value_heads,omitempty"`
	// HeadDim 0 means HiddenSize / NumAttentionHeads.
	HeadDim               int `json:"head_dim,omitempty"`
	VocabSize             int `json:"vocab_size"`
	MaxPositionEmbeddings int `json:"max_position_embeddings"`

	RMSNormEps  float64      `json:"rms_norm_eps"`
	RopeTheta   float64      `json:"rope_theta,omitempty"` // 0 means 10000
	RopeScaling *RopeScaling `json:"rope_scaling,omitempty"`

	TieWordEmbeddings bool `json:"tie_word_embeddings"`
	// AttentionBias adds biases to q, k, v and o projections (Llama's
	// meaning). Qwen2 models (ModelType "qwen2") always have q, k, v biases
	// and no o bias, whatever this says.
	AttentionBias bool `json:"attention_bias"`
	// MLPBias adds biases to gate, up and down projections.
	MLPBias bool `json:"mlp_bias"`

	HiddenAct        string  `json:"hidden_act,omitempty"`        // must be "silu"
	InitializerRange float64 `json:"initializer_range,omitempty"` // 0 means 0.02

	// Sliding-window attention (Mistral v0.1, some Qwen2) is not
	// implemented; sequences longer than the window are refused.
	SlidingWindow    *int `json:"sliding_window,omitempty"`
	UseSlidingWindow bool `json:"use_sliding_window,omitempty"`

	BOSTokenID *int            `json:"bos_token_id,omitempty"`
	EOSTokenID json.RawMessage `json:"eos_token_id,omitempty"` // an id or a list of ids
	PadTokenID *int            `json:"pad_token_id,omitempty"`
	TorchDtype string          `json:"torch_dtype,omitempty"`

	// Extra holds the config.json keys this struct does not model
	// (transformers_version, use_cache, max_window_layers, …), written back
	// unchanged by MarshalJSON.
	Extra map[string]json.RawMessage `json:"-"`
}

// configKeys are the JSON keys Config models.
var configKeys = func() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}()

// UnmarshalJSON reads a config.json, keeping unknown keys in Extra. Fields
// absent from the JSON keep their current values (ParseConfig relies on
// this for defaults).
func (c *Config) UnmarshalJSON(data []byte) error {
	type plain Config
	p := plain(*c)
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	*c = Config(p)
	c.Extra = nil
	for k, v := range all {
		if !configKeys[k] {
			if c.Extra == nil {
				c.Extra = map[string]json.RawMessage{}
			}
			c.Extra[k] = v
		}
	}
	return nil
}

// MarshalJSON writes the modelled fields and the Extra keys.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	known, err := json.Marshal(plain(c))
	if err != nil {
		return nil, err
	}
	if len(c.Extra) == 0 {
		return known, nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(known, &all); err != nil {
		return nil, err
	}
	for k, v := range c.Extra {
		if _, ok := all[k]; !ok {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

// RopeScaling is HF's rope_scaling object. RopeType "default" (or an absent
// object) is plain RoPE, "linear" divides every frequency by Factor, and
// "llama3" is Llama 3.1's wavelength-dependent scaling.
type RopeScaling struct {
	RopeType                      string  `json:"rope_type"`
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings,omitempty"`
}

// UnmarshalJSON accepts the legacy "type" key for "rope_type".
func (r *RopeScaling) UnmarshalJSON(data []byte) error {
	type plain RopeScaling
	var aux struct {
		plain
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*r = RopeScaling(aux.plain)
	if r.RopeType == "" {
		r.RopeType = aux.Type
	}
	return nil
}

// ParseConfig reads a Hugging Face config.json, applying transformers'
// LlamaConfig defaults to absent fields (rms_norm_eps 1e-6, rope_theta
// 10000, max_position_embeddings 2048, initializer_range 0.02, hidden_act
// silu, num_key_value_heads = num_attention_heads), and validates it.
func ParseConfig(data []byte) (Config, error) {
	c := Config{
		RMSNormEps:            1e-6,
		RopeTheta:             10000,
		MaxPositionEmbeddings: 2048,
		InitializerRange:      0.02,
		HiddenAct:             "silu",
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("parse model config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Normalized returns c with zero-valued optional fields set to their
// defaults: ModelType "llama", NumKeyValueHeads = NumAttentionHeads, HeadDim
// = HiddenSize/NumAttentionHeads, RopeTheta 10000, RMSNormEps 1e-6,
// InitializerRange 0.02, HiddenAct "silu".
func (c Config) Normalized() Config {
	if c.ModelType == "" {
		c.ModelType = "llama"
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-6
	}
	if c.InitializerRange == 0 {
		c.InitializerRange = 0.02
	}
	if c.HiddenAct == "" {
		c.HiddenAct = "silu"
	}
	return c
}

// Validate reports the first problem with the (normalized) config.
func (c Config) Validate() error {
	n := c.Normalized()
	switch {
	case n.HiddenSize <= 0:
		return fmt.Errorf("model config: hidden_size %d must be positive", c.HiddenSize)
	case n.IntermediateSize <= 0:
		return fmt.Errorf("model config: intermediate_size %d must be positive", c.IntermediateSize)
	case n.NumHiddenLayers < 0:
		return fmt.Errorf("model config: num_hidden_layers %d is negative", c.NumHiddenLayers)
	case n.NumAttentionHeads <= 0:
		return fmt.Errorf("model config: num_attention_heads %d must be positive", c.NumAttentionHeads)
	case n.NumKeyValueHeads <= 0 || n.NumAttentionHeads%n.NumKeyValueHeads != 0:
		return fmt.Errorf("model config: num_attention_heads %d is not a multiple of num_key_value_heads %d", n.NumAttentionHeads, n.NumKeyValueHeads)
	case n.HeadDim <= 0 || n.HeadDim%2 != 0:
		return fmt.Errorf("model config: head_dim %d must be positive and even", n.HeadDim)
	case n.VocabSize <= 0:
		return fmt.Errorf("model config: vocab_size %d must be positive", c.VocabSize)
	case n.MaxPositionEmbeddings <= 0:
		return fmt.Errorf("model config: max_position_embeddings %d must be positive", c.MaxPositionEmbeddings)
	case !(n.RMSNormEps > 0):
		return fmt.Errorf("model config: rms_norm_eps %g must be positive", c.RMSNormEps)
	case !(n.RopeTheta > 0):
		return fmt.Errorf("model config: rope_theta %g must be positive", c.RopeTheta)
	case n.HiddenAct != "silu":
		return fmt.Errorf("model config: hidden_act %q is not supported (only silu)", c.HiddenAct)
	}
	switch n.ModelType {
	case "llama", "qwen2", "mistral":
	default:
		return fmt.Errorf("model config: model_type %q is not a Llama-family decoder (llama, qwen2, mistral)", c.ModelType)
	}
	if rs := n.RopeScaling; rs != nil {
		switch rs.RopeType {
		case "", "default":
		case "linear":
			if !(rs.Factor > 0) {
				return fmt.Errorf("model config: rope_scaling.factor %g must be positive", rs.Factor)
			}
		case "llama3":
			if !(rs.Factor > 0) || !(rs.LowFreqFactor > 0) || !(rs.HighFreqFactor > rs.LowFreqFactor) || rs.OriginalMaxPositionEmbeddings <= 0 {
				return fmt.Errorf("model config: llama3 rope_scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0, got %+v", *rs)
			}
		default:
			return fmt.Errorf("model config: rope_scaling type %q is not supported (default, linear, llama3)", rs.RopeType)
		}
	}
	return nil
}

// QKVBias reports whether the q, k and v projections have biases.
func (c Config) QKVBias() bool { return c.AttentionBias || c.Normalized().ModelType == "qwen2" }

// OBias reports whether the attention output projection has a bias.
func (c Config) OBias() bool { return c.AttentionBias && c.Normalized().ModelType != "qwen2" }

// SlidingWindowLimit is the longest sequence this implementation runs for
// the config (sliding-window attention is not implemented, so a window
// shorter than the sequence is refused), or 0 for no limit.
func (c Config) SlidingWindowLimit() int {
	n := c.Normalized()
	if n.SlidingWindow == nil {
		return 0
	}
	if n.ModelType == "qwen2" && !n.UseSlidingWindow {
		return 0
	}
	return *n.SlidingWindow
}

// Size limits of a config: far above any real model, low enough that the
// sizes computed from them cannot overflow. A config.json beyond them is
// damage or a mistake, refused before anything is allocated.
const (
	MaxDim    = 1 << 24 // hidden_size, intermediate_size, vocab_size, head_dim, heads·head_dim
	MaxLayers = 1 << 12 // num_hidden_layers
	MaxHeads  = 1 << 14 // num_attention_heads, num_key_value_heads
	MaxParams = 1 << 40 // parameters in all
)

// ParamCount is NumParams computed without overflow, or an error naming
// the field beyond the size limits (MaxDim, MaxLayers, MaxHeads,
// MaxParams).
func (c Config) ParamCount() (int64, error) {
	n := c.Normalized()
	for _, f := range []struct {
		name string
		v    int
		max  int
	}{
		{"hidden_size", n.HiddenSize, MaxDim}, {"intermediate_size", n.IntermediateSize, MaxDim},
		{"vocab_size", n.VocabSize, MaxDim}, {"head_dim", n.HeadDim, MaxDim},
		{"num_hidden_layers", n.NumHiddenLayers, MaxLayers},
		{"num_attention_heads", n.NumAttentionHeads, MaxHeads}, {"num_key_value_heads", n.NumKeyValueHeads, MaxHeads},
		{"num_attention_heads × head_dim", n.NumAttentionHeads * n.HeadDim, MaxDim},
	} {
		if f.v < 0 || f.v > f.max {
			return 0, fmt.Errorf("model config: %s %d is beyond the limit of %d (damaged or not a Llama config?)", f.name, f.v, f.max)
		}
	}
	// Every factor is now below 2^24 (layers 2^12): float64 is exact
	// enough to compare with MaxParams, and int64 cannot overflow below it.
	d, f := float64(n.HiddenSize), float64(n.IntermediateSize)
	q, kv := float64(n.NumAttentionHeads*n.HeadDim), float64(n.NumKeyValueHeads*n.HeadDim)
	approx := float64(n.NumHiddenLayers)*(2*d+2*d*q+2*d*kv+3*d*f+q+2*kv+3*d+2*f) + 2*float64(n.VocabSize)*d + d
	if approx > MaxParams {
		return 0, fmt.Errorf("model config: %.3g parameters is beyond the limit of %d", approx, int64(MaxParams))
	}
	return int64(c.NumParams()), nil
}

// NumParams is the number of parameters (the tied head counted once).
func (c Config) NumParams() int {
	n := c.Normalized()
	d, f, hd := n.HiddenSize, n.IntermediateSize, n.HeadDim
	q, kv := n.NumAttentionHeads*hd, n.NumKeyValueHeads*hd
	layer := 2*d + d*q + 2*d*kv + q*d + 3*d*f
	if n.QKVBias() {
		layer += q + 2*kv
	}
	if n.OBias() {
		layer += d
	}
	if n.MLPBias {
		layer += 2*f + d
	}
	total := n.VocabSize*d + n.NumHiddenLayers*layer + d
	if !n.TieWordEmbeddings {
		total += n.VocabSize * d
	}
	return total
}

// FlopsPerToken is the forward FLOPs per token as Levanter's
// lm_flops_per_token computes them for a Llama (GLU) model with sequence
// length seqLen: per layer 2·3·d·f (MLP) + 2·d·(q+2·kv) (q, k, v) + 2·d·q
// (o) + attention counted over the full seq×seq map (4·seqLen·q +
// 3·seqLen·heads), plus 2·d·vocab for the LM head. Embedding lookups count
// nothing. A training step costs 3× this per token (forward + backward);
// MFU = 3·FlopsPerToken·tokens / seconds / peak.
func (c Config) FlopsPerToken(seqLen int) float64 {
	n := c.Normalized()
	d, f := float64(n.HiddenSize), float64(n.IntermediateSize)
	hd := float64(n.HeadDim)
	h, kv := float64(n.NumAttentionHeads), float64(n.NumKeyValueHeads)
	s := float64(seqLen)
	mlp := 2 * 3 * d * f
	qkv := 2 * d * (h*hd + 2*kv*hd)
	dense := 2 * d * h * hd
	attn := (2*s*s*h*hd + 3*s*s*h + 2*s*s*hd*h) / s
	return float64(n.NumHiddenLayers)*(mlp+qkv+dense+attn) + 2*d*float64(n.VocabSize)
}

// TrainBytesPerToken estimates the memory LossAndGrad needs per token of a
// micro-batch, beyond parameters, gradients and optimizer state: the
// activations kept for backward (per layer: input, q, k, v, attention
// output, mid-layer residual, gate and up projections) and the shared
// scratch buffers. Use it to size micro-batches: bytes ≈ B·T·this.
func (c Config) TrainBytesPerToken() int {
	n := c.Normalized()
	d, f := n.HiddenSize, n.IntermediateSize
	q, kv := n.NumAttentionHeads*n.HeadDim, n.NumKeyValueHeads*n.HeadDim
	perLayer := 2*d + 2*q + 2*kv + 2*f + 2 + n.NumAttentionHeads
	scratch := 6*d + 2*q + 2*kv + f
	return 4 * (n.NumHiddenLayers*perLayer + scratch)
}

func (c Config) AttentionScale() float32 {
	return float32(1 / math.Sqrt(float64(c.Normalized().HeadDim)))
}
