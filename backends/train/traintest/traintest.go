// Package traintest makes small, real training inputs for tests of the train
// op and of the backends that plug into it: synthetic token caches and the
// config of a tiny from-scratch run.
package traintest

import (
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/marin-go/marin/backends/tokens/tokencache"
)

// Vocab is the vocabulary size of the synthetic caches.
const Vocab = 48

// WriteCache writes a token cache of n documents that count upwards modulo
// Vocab from a random start (a task a tiny model learns), every token but
// the first trained.
func WriteCache(t testing.TB, dir string, seed uint64, n int, validation bool) string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	w, err := tokencache.NewShardWriter(dir, tokencache.ShardName(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		l := 3 + r.IntN(12)
		start := r.IntN(Vocab)
		ids := make([]uint32, l)
		mask := make([]uint8, l)
		for j := range ids {
			ids[j] = uint32((start + j) % Vocab)
			if j > 0 {
				mask[j] = 1
			}
		}
		if err := w.Append(ids, mask); err != nil {
			t.Fatal(err)
		}
	}
	info, err := w.Commit(tokencache.ShardInfo{Source: "synthetic", Counts: tokencache.Counts{Conversations: int64(n)}})
	if err != nil {
		t.Fatal(err)
	}
	m := &tokencache.Manifest{
		Tokenizer:    tokencache.TokenizerInfo{Name: "synthetic", SHA256: "", VocabSize: Vocab},
		Format:       json.RawMessage(`{"name":"chatml","pack":true}`),
		IsValidation: validation,
		Input:        "synthetic",
		Shards:       []tokencache.ShardInfo{info},
	}
	if err := tokencache.WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Config returns the JSON config of a small from-scratch run of steps steps
// over two weighted components and one validation component, with caches
// written under root.
func Config(t testing.TB, root string, steps int64) []byte {
	t.Helper()
	a := WriteCache(t, filepath.Join(root, "cache-a"), 1, 300, false)
	b := WriteCache(t, filepath.Join(root, "cache-b"), 2, 200, false)
	v := WriteCache(t, filepath.Join(root, "cache-v"), 3, 40, true)
	raw := map[string]any{
		"data": map[string]any{
			"components": map[string]any{
				"a":   map[string]any{"cache": a, "weight": 0.7, "validation_only": false},
				"b":   map[string]any{"cache": b, "weight": 0.3, "validation_only": false},
				"val": map[string]any{"cache": v, "weight": 0, "validation_only": true},
			},
			"max_seq_len": 32, "mixture_block_size": 64, "permutation_type": "feistel", "shuffle": true, "stop_strategy": "restart",
		},
		"train_batch_size": 8, "num_train_steps": steps, "num_train_epochs": nil, "max_seq_len": 32,
		"learning_rate": 3e-3, "weight_decay": 0.01, "warmup": 2, "cooldown": 0.5, "lr_schedule": "cosine",
		"min_lr_ratio": 0.1, "max_grad_norm": 1.0, "z_loss_weight": 1e-4, "seed": 5,
		"steps_per_eval": 3, "steps_per_checkpoint": 4, "steps_per_hf_export": 6, "mixture_block_size": 64, "stop_strategy": "restart",
		"model_name_or_path": nil, "initialize_from_checkpoint_path": nil, "tokenizer": nil,
		"model_config": map[string]any{
			"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
			"num_key_value_heads": 2, "vocab_size": Vocab, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
		},
		"resources":          map[string]any{"backend": "cpu", "threads": 0},
		"micro_batch_size":   2,
		"checkpoint_minutes": -1,
	}
	js, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
