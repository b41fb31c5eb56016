package gomlx

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// Config is a Hugging Face LlamaConfig (also Mistral- and Qwen2-style
// configs), read from and written to config.json with HF's field names.
type Config struct {
	ModelType             string       `json:"model_type"`
	Architectures         []string     `json:"architectures,omitempty"`
	VocabSize             int          `json:"vocab_size"`
	HiddenSize            int          `json:"hidden_size"`
	IntermediateSize      int          `json:"intermediate_size"`
	NumHiddenLayers       int          `json:"num_hidden_layers"`
	NumAttentionHeads     int          `json:"num_attention_heads"`
	NumKeyValueHeads      int          `json:"num_key_value_heads"`
	HeadDim               int          `json:"head_dim,omitempty"`
	HiddenAct             string       `json:"hidden_act"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings"`
	RMSNormEps            float64      `json:"rms_norm_eps"`
	RopeTheta             float64      `json:"rope_theta"`
	RopeScaling           *RopeScaling `json:"rope_scaling,omitempty"`
	TieWordEmbeddings     bool         `json:"tie_word_embeddings"`
	AttentionBias         bool         `json:"attention_bias"`
	MLPBias               bool         `json:"mlp_bias"`
	BOSTokenID            any          `json:"bos_token_id,omitempty"`
	EOSTokenID            any          `json:"eos_token_id,omitempty"`
	TorchDType            string       `json:"torch_dtype,omitempty"`
}

// RopeScaling is HF's rope_scaling: "default", "linear" or "llama3".
type RopeScaling struct {
	RopeType                      string  `json:"rope_type,omitempty"`
	Type                          string  `json:"type,omitempty"` // older configs
	Factor                        float64 `json:"factor,omitempty"`
	LowFreqFactor                 float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings,omitempty"`
}

// ParseConfig reads a config.json, applying LlamaConfig's defaults.
func ParseConfig(data []byte) (Config, error) {
	c := Config{ModelType: "llama", HiddenAct: "silu", RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 2048}
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("parse model config: %w", err)
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	return c, c.Validate()
}

// Validate reports a config this package cannot run.
func (c Config) Validate() error {
	switch {
	case c.VocabSize <= 0, c.HiddenSize <= 0, c.IntermediateSize <= 0, c.NumHiddenLayers <= 0, c.NumAttentionHeads <= 0:
		return fmt.Errorf("model config: vocab_size, hidden_size, intermediate_size, num_hidden_layers and num_attention_heads must be positive")
	case c.NumKeyValueHeads <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return fmt.Errorf("model config: num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		return fmt.Errorf("model config: head_dim %d must be positive and even", c.HeadDim)
	case c.HiddenAct != "silu" && c.HiddenAct != "swish":
		return fmt.Errorf("model config: hidden_act %q not supported (want silu)", c.HiddenAct)
	}
	switch c.ropeType() {
	case "default", "linear", "llama3":
	default:
		return fmt.Errorf("model config: rope_scaling type %q not supported (want default, linear or llama3)", c.ropeType())
	}
	switch c.ModelType {
	case "llama", "mistral", "qwen2":
	default:
		return fmt.Errorf("model config: model_type %q not supported (want llama, mistral or qwen2)", c.ModelType)
	}
	return nil
}

func (c Config) ropeType() string {
	if c.RopeScaling == nil {
		return "default"
	}
	if c.RopeScaling.RopeType != "" {
		return c.RopeScaling.RopeType
	}
	if c.RopeScaling.Type != "" {
		return c.RopeScaling.Type
	}
	return "default"
}

// qkvBias says whether q/k/v projections carry biases (Qwen2 always; Llama
// with attention_bias). oBias: o_proj too (Llama's attention_bias only).
func (c Config) qkvBias() bool { return c.ModelType == "qwen2" || c.AttentionBias }
func (c Config) oBias() bool   { return c.ModelType != "qwen2" && c.AttentionBias }

// InvFreq returns RoPE's inverse frequencies (head_dim/2 of them) with HF's
// rope scaling applied.
func (c Config) InvFreq() []float64 {
	half := c.HeadDim / 2
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.HeadDim))
	}
	switch c.ropeType() {
	case "linear":
		for i := range inv {
			inv[i] /= c.RopeScaling.Factor
		}
	case "llama3":
		rs := c.RopeScaling
		old := float64(rs.OriginalMaxPositionEmbeddings)
		lowWave, highWave := old/rs.LowFreqFactor, old/rs.HighFreqFactor
		for i, f := range inv {
			wave := 2 * math.Pi / f
			scaled := f
			if wave > lowWave {
				scaled = f / rs.Factor
			}
			if !(wave < highWave) && !(wave > lowWave) {
				smooth := (old/wave - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
				scaled = (1-smooth)*scaled/rs.Factor + smooth*scaled
			}
			inv[i] = scaled
		}
	}
	return inv
}

// ParamSpec is one named parameter with its HF name and row-major shape.
type ParamSpec struct {
	Name  string
	Shape []int
	// Decay says whether AdamW's weight decay applies: Levanter decays the
	// weights of linear layers (the projections and an untied lm_head) but
	// not biases, norms or embeddings.
	Decay bool
}

// Params lists the model's parameters in a fixed order.
func (c Config) Params() []ParamSpec {
	D, F, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	qd, kvd := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	ps := []ParamSpec{{Name: "model.embed_tokens.weight", Shape: []int{V, D}}}
	// The order is backends/model/llama's (biases right after their weights), so
	// optimizer states list tensors in the same order in both backends.
	for l := range c.NumHiddenLayers {
		p := fmt.Sprintf("model.layers.%d.", l)
		lin := func(name string, out, in int, bias bool) {
			ps = append(ps, ParamSpec{Name: p + name + ".weight", Shape: []int{out, in}, Decay: true})
			if bias {
				ps = append(ps, ParamSpec{Name: p + name + ".bias", Shape: []int{out}})
			}
		}
		ps = append(ps, ParamSpec{Name: p + "input_layernorm.weight", Shape: []int{D}})
		lin("self_attn.q_proj", qd, D, c.qkvBias())
		lin("self_attn.k_proj", kvd, D, c.qkvBias())
		lin("self_attn.v_proj", kvd, D, c.qkvBias())
		lin("self_attn.o_proj", D, qd, c.oBias())
		ps = append(ps, ParamSpec{Name: p + "post_attention_layernorm.weight", Shape: []int{D}})
		lin("mlp.gate_proj", F, D, c.MLPBias)
		lin("mlp.up_proj", F, D, c.MLPBias)
		lin("mlp.down_proj", D, F, c.MLPBias)
	}
	ps = append(ps, ParamSpec{Name: "model.norm.weight", Shape: []int{D}})
	if !c.TieWordEmbeddings {
		ps = append(ps, ParamSpec{Name: "lm_head.weight", Shape: []int{V, D}, Decay: true})
	}
	return ps
}

// NumParams counts the model's parameters.
func (c Config) NumParams() int64 {
	var n int64
	for _, p := range c.Params() {
		k := int64(1)
		for _, d := range p.Shape {
			k *= int64(d)
		}
		n += k
	}
	return n
}

// FLOPsPerToken is the training cost of one token (forward and backward:
// 6 per weight of the matmuls, plus attention's 12·layers·heads·head_dim·seq),
// the usual basis of MFU.
func (c Config) FLOPsPerToken(seqLen int) float64 {
	var matmul int64
	for _, p := range c.Params() {
		if len(p.Shape) == 2 && !strings.HasPrefix(p.Name, "model.embed_tokens") {
			matmul += int64(p.Shape[0]) * int64(p.Shape[1])
		}
	}
	if c.TieWordEmbeddings {
		matmul += int64(c.VocabSize) * int64(c.HiddenSize)
	}
	attn := 12 * float64(c.NumHiddenLayers) * float64(c.NumAttentionHeads*c.HeadDim) * float64(seqLen)
	return 6*float64(matmul) + attn
}

// JSON returns config.json's content.
func (c Config) JSON() ([]byte, error) {
	if len(c.Architectures) == 0 {
		switch c.ModelType {
		case "qwen2":
			c.Architectures = []string{"Qwen2ForCausalLM"}
		case "mistral":
			c.Architectures = []string{"MistralForCausalLM"}
		default:
			c.Architectures = []string{"LlamaForCausalLM"}
		}
	}
	return json.MarshalIndent(c, "", "  ")
}
