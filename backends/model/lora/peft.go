package lora

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/safetensors"
	"github.com/marin-go/marin/plugins/storage"
)

// WriteFiles writes the adapter in PEFT's layout into dir (which must
// exist): adapter_config.json from a.Spec and adapter_model.safetensors in
// dtype (F32 or BF16; "" is F32). Each file is written atomically; a
// directory that must appear whole is the caller's (weights.ExportAdapter).
func WriteFiles(dir string, a *Adapter, dtype safetensors.DType) error {
	if dtype == "" {
		dtype = safetensors.F32
	}
	cj, err := a.Spec.ConfigJSON()
	if err != nil {
		return fmt.Errorf("write adapter %s: %w", dir, err)
	}
	if err := storage.WriteAtomic(context.Background(), filepath.Join(dir, ConfigName), append(cj, '\n')); err != nil {
		return fmt.Errorf("write adapter %s: %w", dir, err)
	}
	ts := make([]safetensors.Tensor, 0, len(a.list))
	for _, t := range a.list {
		shape := make([]int64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = int64(d)
		}
		ts = append(ts, safetensors.Tensor{Name: t.Name, Shape: shape, Data: t.Data})
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsName), ts, dtype, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("write adapter %s: %w", dir, err)
	}
	return nil
}

// Read reads the adapter in dir (PEFT's layout, made by marin or
// elsewhere) for model c. The tensors in adapter_model.safetensors say
// which projections are adapted and which base tensors were trained in
// full; each is checked against the model's shapes before anything is
// allocated. F32, BF16 and F16 tensors are read (as float32).
func Read(dir string, c llama.Config) (*Adapter, error) {
	spec, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, WeightsName)
	f, err := safetensors.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, e := os.Stat(filepath.Join(dir, "adapter_model.bin")); e == nil {
				return nil, fmt.Errorf("adapter %s: only adapter_model.bin (a PyTorch pickle) is there; marin reads safetensors adapters (PEFT's default since 0.6)", dir)
			}
		}
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	c = c.Normalized()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	lay, err := fileLayout(f, spec, c)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	a, err := alloc(spec, c, lay)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	for _, t := range a.list {
		ti := f.Tensors[t.Name]
		if !ti.DType.IsFloat() {
			return nil, fmt.Errorf("adapter %s: tensor %s has dtype %s, not a float type", dir, t.Name, ti.DType)
		}
		if !sameShape(ti.Shape, t.Shape) {
			return nil, fmt.Errorf("adapter %s: tensor %s has shape %v, the model needs %v", dir, t.Name, ti.Shape, t.Shape)
		}
		if err := f.Float32Into(t.Name, t.Data); err != nil {
			return nil, fmt.Errorf("adapter %s: %w", dir, err)
		}
	}
	return a, nil
}

// fileLayout works out an adapter's layout from its tensor names.
func fileLayout(f *safetensors.File, spec Spec, c llama.Config) (layout, error) {
	var lay layout
	shapes, err := llama.Shapes(c)
	if err != nil {
		return lay, err
	}
	base := map[string]*llama.Tensor{}
	for _, t := range shapes {
		base[t.Name] = t
	}
	type pair struct{ a, b bool }
	pairs := map[moduleRef]*pair{}
	full := map[string]bool{}
	for _, name := range f.Names() {
		rest, ok := strings.CutPrefix(name, Prefix)
		if !ok {
			return lay, fmt.Errorf("tensor %s: not a PEFT adapter tensor name (they start with %q)", name, Prefix)
		}
		var which string
		if m, ok := strings.CutSuffix(rest, ".lora_A.weight"); ok {
			rest, which = m, "A"
		} else if m, ok := strings.CutSuffix(rest, ".lora_B.weight"); ok {
			rest, which = m, "B"
		}
		if which == "" {
			if strings.Contains(rest, "lora_") {
				return lay, fmt.Errorf("tensor %s: not a LoRA tensor marin applies (LoRA on embeddings, DoRA magnitudes and lora_bias are not supported)", name)
			}
			if base[rest] == nil {
				return lay, fmt.Errorf("tensor %s: the model has no tensor %s to replace", name, rest)
			}
			full[rest] = true
			continue
		}
		ref, ok := parseModule(rest, c.NumHiddenLayers)
		if !ok {
			return lay, fmt.Errorf("tensor %s: %s is not a decoder projection of this model (model.layers.N.self_attn.{q,k,v,o}_proj or model.layers.N.mlp.{gate,up,down}_proj)", name, rest)
		}
		p := pairs[ref]
		if p == nil {
			p = &pair{}
			pairs[ref] = p
		}
		ti := f.Tensors[name]
		if which == "A" {
			p.a = true
			if len(ti.Shape) != 2 {
				return lay, fmt.Errorf("tensor %s has shape %v, want [r, in]", name, ti.Shape)
			}
			if int(ti.Shape[0]) != spec.R {
				return lay, fmt.Errorf("tensor %s has rank %d, %s says r = %d", name, ti.Shape[0], ConfigName, spec.R)
			}
		} else {
			p.b = true
		}
	}
	for l := range c.NumHiddenLayers {
		for k := Q; k < NumKinds; k++ {
			ref := moduleRef{layer: l, kind: k}
			p := pairs[ref]
			if p == nil {
				continue
			}
			if !p.a || !p.b {
				return lay, fmt.Errorf("%s has only one of lora_A and lora_B", k.ModuleName(l))
			}
			ref.r = spec.R
			lay.modules = append(lay.modules, ref)
		}
	}
	if len(lay.modules) == 0 {
		return lay, fmt.Errorf("%s holds no lora_A/lora_B pairs", WeightsName)
	}
	for _, t := range shapes {
		if full[t.Name] {
			lay.full = append(lay.full, t.Name)
		}
	}
	return lay, nil
}

// parseModule reads model.layers.N.{self_attn,mlp}.KIND.
func parseModule(name string, layers int) (moduleRef, bool) {
	rest, ok := strings.CutPrefix(name, "model.layers.")
	if !ok {
		return moduleRef{}, false
	}
	num, _, ok := strings.Cut(rest, ".")
	if !ok {
		return moduleRef{}, false
	}
	l, err := strconv.Atoi(num)
	if err != nil || l < 0 || l >= layers || strconv.Itoa(l) != num {
		return moduleRef{}, false
	}
	for k := Q; k < NumKinds; k++ {
		if k.ModuleName(l) == name {
			return moduleRef{layer: l, kind: k}, true
		}
	}
	return moduleRef{}, false
}

func sameShape(a []int64, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != int64(b[i]) {
			return false
		}
	}
	return true
}
