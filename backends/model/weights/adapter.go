package weights

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/safetensors"
	"github.com/marin-go/marin/plugins/storage"
)

// Load resolves name (Resolve: a directory, a training step's output or a
// hub id) and reads the model there; an adapter directory gives its base
// with the adapter merged.
func Load(ctx context.Context, name string, logf Logf) (*llama.Params, Info, error) {
	dir, err := Resolve(ctx, name, logf)
	if err != nil {
		return nil, Info{}, err
	}
	if !lora.IsAdapterDir(dir) || hasConfig(dir) {
		return LoadDir(dir)
	}
	base, a, info, err := LoadAdapter(ctx, dir, logf)
	if err != nil {
		return nil, info, err
	}
	p, err := a.Merge(base)
	if err != nil {
		return nil, info, fmt.Errorf("adapter %s: %w", dir, err)
	}
	return p, info, nil
}

func hasConfig(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ConfigName))
	return err == nil
}

// LoadAdapter reads the adapter in the local directory dir and its base
// model (AdapterBase), unmerged. Info.Dir is dir, Info.Base the base's
// directory and Info.BaseName the name it was found by.
func LoadAdapter(ctx context.Context, dir string, logf Logf) (*llama.Params, *lora.Adapter, Info, error) {
	info := Info{Dir: dir}
	spec, err := lora.ReadConfig(dir)
	if err != nil {
		return nil, nil, info, err
	}
	name, err := AdapterBase(dir, spec)
	if err != nil {
		return nil, nil, info, err
	}
	baseDir, err := Resolve(ctx, name, logf)
	if err != nil {
		return nil, nil, info, fmt.Errorf("adapter %s: its base model: %w", dir, err)
	}
	if lora.IsAdapterDir(baseDir) && !hasConfig(baseDir) {
		return nil, nil, info, fmt.Errorf("adapter %s: its base %s is itself an adapter; marin applies one adapter to a model", dir, baseDir)
	}
	base, binfo, err := LoadDir(baseDir)
	if err != nil {
		return nil, nil, info, fmt.Errorf("adapter %s: its base model: %w", dir, err)
	}
	info.DTypes, info.Ignored = binfo.DTypes, binfo.Ignored
	info.Base, info.BaseName = baseDir, name
	a, err := lora.Read(dir, base.Config)
	if err != nil {
		return nil, nil, info, err
	}
	return base, a, info, nil
}

// AdapterBase says where the base model of the adapter in dir is: the
// directory marin.json's base_model names (relative to dir) when it
// exists, else base_model_name_or_path of adapter_config.json (a path, or
// a hub id pinned to its revision when it has one).
func AdapterBase(dir string, spec lora.Spec) (string, error) {
	mi, err := ReadMarinInfo(dir)
	if err != nil {
		return "", err
	}
	if mi != nil && mi.BaseModel != "" {
		p := mi.BaseModel
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, filepath.FromSlash(p))
		}
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	name := spec.BaseModel
	if name == "" {
		return "", fmt.Errorf("adapter %s: %s names no base model (base_model_name_or_path) and %s has none", dir, lora.ConfigName, MarinInfoName)
	}
	if spec.Revision != "" && IsHubID(name) && !strings.Contains(name, "@") {
		name += "@" + spec.Revision
	}
	return name, nil
}

// ExportAdapter writes adapter a to dir in PEFT's layout (see the package
// doc) atomically, with o's tokenizer files and extra files (marin.json).
// o.DType is the tensors' dtype (F32 by default).
func ExportAdapter(dir string, a *lora.Adapter, o ExportOptions) error {
	return WriteDirAtomic(dir, func(tmp string) error {
		if err := lora.WriteFiles(tmp, a, o.DType); err != nil {
			return fmt.Errorf("export %s: %w", dir, err)
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

// Fingerprint identifies the model in dir cheaply, to tell at a LoRA run's
// resumption whether its frozen base is still the one it started with:
// sha256 over config.json and, per safetensors file (sorted), its name,
// size, header and first and last MiB of data. A base rewritten with other
// weights changes it; a copy (a moved prefix) does not.
func Fingerprint(dir string) (string, error) {
	h := sha256.New()
	cfg, err := os.ReadFile(filepath.Join(dir, ConfigName))
	if err != nil {
		return "", fmt.Errorf("fingerprint %s: %w", dir, err)
	}
	h.Write(cfg)
	files, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	if len(files) == 0 {
		return "", fmt.Errorf("fingerprint %s: no safetensors files", dir)
	}
	for _, p := range files {
		f, err := safetensors.Open(p)
		if err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", dir, err)
		}
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(p), st.Size())
		for _, n := range f.Names() {
			ti := f.Tensors[n]
			fmt.Fprintf(h, "%s:%s:%v:%v\x00", n, ti.DType, ti.Shape, ti.DataOffsets)
		}
		if err := hashEnds(h, p, st.Size()); err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", dir, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashEnds(w io.Writer, path string, size int64) error {
	const span = 1 << 20
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if size <= 2*span {
		_, err := io.Copy(w, f)
		return err
	}
	if _, err := io.Copy(w, io.NewSectionReader(f, 0, span)); err != nil {
		return err
	}
	_, err = io.Copy(w, io.NewSectionReader(f, size-span, span))
	return err
}

// BaseRef is how an adapter names its base in adapter_config.json and
// marin.json, given the name the base was asked for and the directory it
// resolved to: a hub id as base_model_name_or_path with its revision; a
// local base by its absolute directory, and by its path relative to
// adapterDir (slash-separated) for marin.json.
func BaseRef(name, baseDir, adapterDir string) (baseModel, revision, relative string) {
	if IsHubID(name) {
		repo, rev, _ := strings.Cut(name, "@")
		return repo, rev, ""
	}
	abs, err := filepath.Abs(baseDir)
	if err != nil {
		abs = baseDir
	}
	rel := ""
	if adAbs, err := filepath.Abs(adapterDir); err == nil {
		if r, err := filepath.Rel(adAbs, abs); err == nil {
			rel = filepath.ToSlash(r)
		}
	}
	return abs, "", rel
}
