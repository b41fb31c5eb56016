package llama

import "testing"

// FuzzParseConfig: no config.json makes parsing, the size check or the
// tensor layout panic, and a config that passes the size check lists
// exactly the parameters it counts.
//
//	go test -run '^$' -fuzz FuzzParseConfig -fuzztime 10m ./backends/model/llama/
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"hidden_size": 64, "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 272, "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "tie_word_embeddings": true}`))
	f.Add([]byte(`{"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "rope_theta": 1000000.0, "sliding_window": 32768, "use_sliding_window": false}`))
	f.Add([]byte(`{"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "eos_token_id": [128001, 128008, 128009]}`))
	f.Add([]byte(`{"hidden_size": 1073741824, "intermediate_size": 1, "num_hidden_layers": 1000000000000, "num_attention_heads": 1, "vocab_size": 1}`))
	f.Add([]byte(`{"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": -4, "vocab_size": 4}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		n, err := c.ParamCount()
		if err != nil {
			return
		}
		if n > 1<<22 {
			return // the layout's loops would only be slow
		}
		shapes, err := Shapes(c)
		if err != nil {
			t.Fatalf("ParamCount accepted %s but Shapes refused it: %v", data, err)
		}
		var total int64
		for _, s := range shapes {
			total += int64(s.Size())
		}
		if total != n {
			t.Fatalf("Shapes holds %d parameters, ParamCount says %d", total, n)
		}
		if _, err := c.MarshalJSON(); err != nil {
			t.Fatalf("a parsed config does not marshal: %v", err)
		}
	})
}
