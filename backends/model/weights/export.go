package weights

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/safetensors"
	"github.com/marin-go/marin/plugins/storage"
)

// MaxShardBytes is where exports start sharding, as transformers'
// save_pretrained does by default.
const MaxShardBytes = 10 << 30

// TokenizerFiles are copied into an export when the tokenizer directory has
// them.
var TokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"}

// ExportOptions say what goes into an export besides the weights.
type ExportOptions struct {
	// DType of the weights on disk: F32 (default, exact) or BF16.
	DType safetensors.DType
	// MaxShardBytes overrides MaxShardBytes (tests); 0 means the default.
	MaxShardBytes int64
	// TokenizerDir holds the tokenizer files to copy; "" copies none.
	TokenizerDir string
	// BOSTokenID and EOSTokenIDs go into config.json and
	// generation_config.json. The first EOS id is config.json's
	// eos_token_id; generation_config.json lists them all.
	BOSTokenID  *int
	EOSTokenIDs []int
	// Extra files written beside the others, by name (e.g. marin.json).
	Extra map[string][]byte
}

// Architecture is the transformers class name for a model type.
func Architecture(modelType string) string {
	switch modelType {
	case "qwen2":
		return "Qwen2ForCausalLM"
	case "mistral":
		return "MistralForCausalLM"
	}
	return "LlamaForCausalLM"
}

// HFConfigJSON is config.json for p's config as an export writes it.
func HFConfigJSON(cfg llama.Config, o ExportOptions) ([]byte, error) {
	c := cfg.Normalized()
	c.Architectures = []string{Architecture(c.ModelType)}
	c.TorchDtype = "float32"
	if o.DType == safetensors.BF16 {
		c.TorchDtype = "bfloat16"
	}
	if o.BOSTokenID != nil {
		b := *o.BOSTokenID
		c.BOSTokenID = &b
	}
	if len(o.EOSTokenIDs) > 0 {
		raw, _ := json.Marshal(o.EOSTokenIDs[0])
		c.EOSTokenID = raw
	}
	var m map[string]any
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	// Fields transformers writes that the Go config leaves out when zero.
	m["attention_bias"] = c.AttentionBias
	m["mlp_bias"] = c.MLPBias
	m["use_cache"] = true
	return json.MarshalIndent(m, "", "  ")
}

// GenerationConfigJSON is generation_config.json.
func GenerationConfigJSON(o ExportOptions) ([]byte, error) {
	m := map[string]any{"_from_model_config": false}
	if o.BOSTokenID != nil {
		m["bos_token_id"] = *o.BOSTokenID
	}
	switch len(o.EOSTokenIDs) {
	case 0:
	case 1:
		m["eos_token_id"] = o.EOSTokenIDs[0]
	default:
		m["eos_token_id"] = o.EOSTokenIDs
	}
	return json.MarshalIndent(m, "", "  ")
}

// WriteModelFiles writes config.json and the safetensors weights of p into
// dir (which must exist). It is the part of an export that checkpoints
// share.
func WriteModelFiles(dir string, p *llama.Params, o ExportOptions) error {
	dtype := o.DType
	if dtype == "" {
		dtype = safetensors.F32
	}
	o.DType = dtype
	cj, err := HFConfigJSON(p.Config, o)
	if err != nil {
		return fmt.Errorf("write %s: config.json: %w", dir, err)
	}
	if err := storage.WriteAtomic(context.Background(), filepath.Join(dir, ConfigName), cj); err != nil {
		return err
	}
	ts := make([]safetensors.Tensor, 0, len(p.Tensors()))
	for _, t := range p.Tensors() {
		shape := make([]int64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = int64(d)
		}
		ts = append(ts, safetensors.Tensor{Name: t.Name, Shape: shape, Data: t.Data})
	}
	shard := o.MaxShardBytes
	if shard == 0 {
		shard = MaxShardBytes
	}
	if err := safetensors.WriteModel(dir, ts, dtype, shard, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	return nil
}

// ExportHF writes p in Hugging Face layout to dir (see the package doc),
// atomically: the files are written into a temporary sibling directory that
// is renamed to dir at the end, replacing an older dir of the same name.
func ExportHF(dir string, p *llama.Params, o ExportOptions) error {
	return WriteDirAtomic(dir, func(tmp string) error {
		if err := WriteModelFiles(tmp, p, o); err != nil {
			return err
		}
		gc, err := GenerationConfigJSON(o)
		if err != nil {
			return fmt.Errorf("export %s: generation_config.json: %w", dir, err)
		}
		if err := storage.WriteAtomic(context.Background(), filepath.Join(tmp, "generation_config.json"), gc); err != nil {
			return err
		}
		if err := CopyTokenizerFiles(o.TokenizerDir, tmp); err != nil {
			return fmt.Errorf("export %s: %w", dir, err)
		}
		for name, data := range o.Extra {
			if err := storage.WriteAtomic(context.Background(), filepath.Join(tmp, name), data); err != nil {
				return err
			}
		}
		return nil
	})
}

// CopyTokenizerFiles copies the TokenizerFiles that exist in src into dst.
// An empty src copies nothing.
func CopyTokenizerFiles(src, dst string) error {
	if src == "" {
		return nil
	}
	for _, name := range TokenizerFiles {
		err := copyFile(filepath.Join(src, name), filepath.Join(dst, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("copy tokenizer file %s: %w", name, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return storage.WriteAtomicFunc(context.Background(), dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// WriteDirAtomic creates dir by filling a temporary sibling directory with
// fill and renaming it to dir. An existing dir is replaced (moved aside,
// then removed). Temporary directories of crashed writers
// (".NAME.tmp-*") are removed first.
func WriteDirAtomic(dir string, fill func(tmp string) error) error {
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if stale, _ := filepath.Glob(filepath.Join(parent, "."+base+".tmp-*")); len(stale) > 0 {
		for _, s := range stale {
			os.RemoveAll(s)
		}
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	if err := fill(tmp); err != nil {
		return err
	}
	// MkdirTemp and CreateTemp make private files; exports are for others
	// to read.
	if err := filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	}); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	syncDir(tmp)
	if _, err := os.Stat(dir); err == nil {
		old := tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("write %s: move the old one aside: %w", dir, err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	syncDir(parent)
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
