package llama

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// A Llama 3.1 8B config.json as published by Meta (abridged only by
// formatting).
const llama31Config = `{
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
}`

func TestParseConfigLlama31(t *testing.T) {
	c, err := ParseConfig([]byte(llama31Config))
	if err != nil {
		t.Fatal(err)
	}
	n := c.Normalized()
	if n.HeadDim != 128 || n.NumKeyValueHeads != 8 || n.RopeScaling.RopeType != "llama3" || n.RopeScaling.OriginalMaxPositionEmbeddings != 8192 {
		t.Fatalf("parsed %+v", n)
	}
	if got := c.NumParams(); got != 8030261248 {
		t.Fatalf("NumParams = %d, want 8030261248 (Llama 3.1 8B)", got)
	}
	if string(c.Extra["transformers_version"]) != `"4.43.0.dev0"` || string(c.EOSTokenID) != "[128001, 128008, 128009]" {
		t.Fatalf("extra %v eos %s", c.Extra, c.EOSTokenID)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back, orig map[string]any
	json.Unmarshal(out, &back)
	json.Unmarshal([]byte(llama31Config), &orig)
	for k, v := range orig {
		if _, ok := back[k]; !ok {
			t.Errorf("key %q lost in the round trip (was %v)", k, v)
		}
	}
	// Llama 3 scaling: the highest frequency is unchanged, the lowest is
	// divided by the factor.
	inv := RopeInvFreq(c)
	last := 1 / math.Pow(500000, 126.0/128) / 8
	if inv[0] != 1 || math.Abs(float64(inv[63])-last) > 1e-6*last {
		t.Fatalf("inv_freq[0]=%g last=%g, want 1 and %g", inv[0], inv[63], last)
	}
}

func TestParseConfigDefaultsAndErrors(t *testing.T) {
	c, err := ParseConfig([]byte(`{"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
		"num_attention_heads": 4, "vocab_size": 100, "model_type": "qwen2"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.RMSNormEps != 1e-6 || c.RopeTheta != 10000 || c.MaxPositionEmbeddings != 2048 || !c.QKVBias() || c.OBias() {
		t.Fatalf("defaults %+v", c)
	}
	for _, bad := range []string{
		`{"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 3, "num_key_value_heads": 2, "vocab_size": 10}`,
		`{"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "vocab_size": 10, "hidden_act": "gelu"}`,
		`{"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "vocab_size": 10, "rope_scaling": {"type": "yarn", "factor": 4}}`,
		`{"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "vocab_size": 10, "model_type": "gpt2"}`,
		`{"hidden_size": "x"}`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		} else if !strings.Contains(err.Error(), "config") {
			t.Errorf("error %q does not say it is about the config", err)
		}
	}
}
