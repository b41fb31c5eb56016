package lora

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"

	"github.com/marin-go/marin/backends/model/llama"
)

// Prefix starts every tensor name of a PEFT adapter (PeftModel wraps the
// transformers model as base_model.model).
const Prefix = "base_model.model."

// Module is one adapted projection: W·x + s·B·A·x.
type Module struct {
	Name  string // the projection's module name, model.layers.3.self_attn.q_proj
	Layer int
	Kind  Kind
	A     *llama.Tensor // [r, in]: Prefix + Name + ".lora_A.weight"
	B     *llama.Tensor // [out, r]: Prefix + Name + ".lora_B.weight"
}

// Rank is the module's r.
func (m *Module) Rank() int { return m.A.Shape[0] }

// Adapter is a LoRA adapter laid out for a model: its trainable tensors
// (the modules' A and B, then the base tensors trained in full), all
// slices of one allocation in Tensors' order. The same type holds an
// adapter's gradients (ZerosLike).
type Adapter struct {
	Spec  Spec
	Model llama.Config // normalized: the model the adapter applies to

	Modules []*Module
	// Full are base tensors trained in full (modules_to_save, biases),
	// named Prefix + their llama.Params name.
	Full []*llama.Tensor

	table  [][NumKinds]*Module
	list   []*llama.Tensor
	byName map[string]*llama.Tensor
	flat   []float32
}

// New returns a zeroed adapter for spec over model c (see Init). It fails
// when spec does not apply to the model (see Spec.Resolved).
func New(spec Spec, c llama.Config) (*Adapter, error) {
	lay, err := spec.resolve(c)
	if err != nil {
		return nil, err
	}
	return alloc(spec, c, lay)
}

func alloc(spec Spec, c llama.Config, lay layout) (*Adapter, error) {
	c = c.Normalized()
	a := &Adapter{Spec: spec, Model: c, byName: map[string]*llama.Tensor{}, table: make([][NumKinds]*Module, c.NumHiddenLayers)}
	add := func(name string, shape ...int) *llama.Tensor {
		t := &llama.Tensor{Name: name, Shape: shape}
		a.list = append(a.list, t)
		a.byName[name] = t
		return t
	}
	for _, ref := range lay.modules {
		if ref.layer < 0 || ref.layer >= c.NumHiddenLayers || a.table[ref.layer][ref.kind] != nil {
			return nil, fmt.Errorf("lora: module %s listed twice or outside the model", ref.kind.ModuleName(ref.layer))
		}
		in, out := ref.kind.Dims(c)
		name := ref.kind.ModuleName(ref.layer)
		m := &Module{Name: name, Layer: ref.layer, Kind: ref.kind}
		m.A = add(Prefix+name+".lora_A.weight", ref.r, in)
		m.B = add(Prefix+name+".lora_B.weight", out, ref.r)
		a.Modules = append(a.Modules, m)
		a.table[ref.layer][ref.kind] = m
	}
	shapes, err := llama.Shapes(c)
	if err != nil {
		return nil, err
	}
	byName := map[string]*llama.Tensor{}
	for _, t := range shapes {
		byName[t.Name] = t
	}
	for _, n := range lay.full {
		t, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("lora: the model has no tensor %s", n)
		}
		a.Full = append(a.Full, add(Prefix+n, t.Shape...))
	}
	total := 0
	for _, t := range a.list {
		total += t.Size()
	}
	a.flat = make([]float32, total)
	off := 0
	for _, t := range a.list {
		n := t.Size()
		t.Data = a.flat[off : off+n : off+n]
		off += n
	}
	return a, nil
}

// layout is the adapter's own layout (to allocate another like it).
func (a *Adapter) layout() layout {
	var lay layout
	for _, m := range a.Modules {
		lay.modules = append(lay.modules, moduleRef{layer: m.Layer, kind: m.Kind, r: m.Rank()})
	}
	for _, t := range a.Full {
		lay.full = append(lay.full, BaseName(t.Name))
	}
	return lay
}

// BaseName is the llama.Params name of a fully trained tensor's PEFT name.
func BaseName(peftName string) string { return strings.TrimPrefix(peftName, Prefix) }

// Init draws a fresh adapter as PEFT does (init_lora_weights=True): A from
// kaiming_uniform_(a=√5), uniform in ±1/√in, B zero; fully trained tensors
// start as base's. The draw is deterministic: tensor T's values come from a
// PCG stream seeded with (seed, FNV-1a-64 of T's name).
func (a *Adapter) Init(base *llama.Params, seed uint64) error {
	for _, m := range a.Modules {
		in := m.A.Shape[1]
		bound := 1 / math.Sqrt(float64(in))
		h := fnv.New64a()
		h.Write([]byte(m.A.Name))
		r := rand.New(rand.NewPCG(seed, h.Sum64()))
		for i := range m.A.Data {
			m.A.Data[i] = float32((2*r.Float64() - 1) * bound)
		}
		clear(m.B.Data)
	}
	for _, t := range a.Full {
		src := base.Tensor(BaseName(t.Name))
		if src == nil || len(src.Data) != len(t.Data) {
			return fmt.Errorf("lora: the base model has no tensor %s shaped %v", BaseName(t.Name), t.Shape)
		}
		copy(t.Data, src.Data)
	}
	return nil
}

// ZerosLike returns a zeroed adapter of the same layout (gradients).
func (a *Adapter) ZerosLike() *Adapter {
	z, err := alloc(a.Spec, a.Model, a.layout())
	if err != nil {
		panic(fmt.Sprintf("lora: re-laying out a valid adapter failed: %v", err))
	}
	return z
}

// Clone returns a deep copy.
func (a *Adapter) Clone() *Adapter {
	z := a.ZerosLike()
	copy(z.flat, a.flat)
	return z
}

// SameLayout reports whether b holds the same tensors (names and shapes,
// in order) as a, saying how they differ when not.
func (a *Adapter) SameLayout(b *Adapter) error {
	if len(a.list) != len(b.list) {
		return fmt.Errorf("%d adapter tensors, the other has %d", len(a.list), len(b.list))
	}
	for i, t := range a.list {
		u := b.list[i]
		if t.Name != u.Name || fmt.Sprint(t.Shape) != fmt.Sprint(u.Shape) {
			return fmt.Errorf("adapter tensor %d is %s %v, the other's is %s %v", i, t.Name, t.Shape, u.Name, u.Shape)
		}
	}
	return nil
}

// Tensors lists the trainable tensors: each module's A then B in model
// order, then Full.
func (a *Adapter) Tensors() []*llama.Tensor { return a.list }

// Tensor returns the tensor of the given PEFT name, or nil.
func (a *Adapter) Tensor(name string) *llama.Tensor { return a.byName[name] }

// Flat is every value in one slice, in Tensors' order.
func (a *Adapter) Flat() []float32 { return a.flat }

// NumParams is the number of trainable values.
func (a *Adapter) NumParams() int { return len(a.flat) }

// Module returns the adapter of layer l's projection k, or nil.
func (a *Adapter) Module(l int, k Kind) *Module {
	if l < 0 || l >= len(a.table) {
		return nil
	}
	return a.table[l][k]
}

// Scale is s, the factor of the low-rank update (Spec.Scale).
func (a *Adapter) Scale() float64 { return a.Spec.Scale() }

// Decays reports whether AdamW's weight decay applies to an adapter
// tensor: the low-rank factors do (as transformers' Trainer decays every
// weight that is not a bias or a norm); fully trained base tensors follow
// the base model's rule (decay).
func Decays(name string, decay func(llamaName string) bool) bool {
	if strings.HasSuffix(name, ".lora_A.weight") || strings.HasSuffix(name, ".lora_B.weight") {
		return true
	}
	return decay(BaseName(name))
}

// View returns base with the adapter's fully trained tensors in place of
// their originals (sharing data with both): the weights the adapted model
// computes with, besides its low-rank updates. base is not changed.
func (a *Adapter) View(base *llama.Params) (*llama.Params, error) {
	if len(a.Full) == 0 {
		return base, nil
	}
	repl := make([]*llama.Tensor, len(a.Full))
	for i, t := range a.Full {
		repl[i] = &llama.Tensor{Name: BaseName(t.Name), Shape: t.Shape, Data: t.Data}
	}
	return base.Replace(repl...)
}

// Check says whether the adapter applies to base: same model shape.
func (a *Adapter) Check(base llama.Config) error {
	want, got := a.Model, base.Normalized()
	for _, d := range [][3]any{
		{"hidden_size", want.HiddenSize, got.HiddenSize},
		{"intermediate_size", want.IntermediateSize, got.IntermediateSize},
		{"num_hidden_layers", want.NumHiddenLayers, got.NumHiddenLayers},
		{"num_attention_heads", want.NumAttentionHeads, got.NumAttentionHeads},
		{"num_key_value_heads", want.NumKeyValueHeads, got.NumKeyValueHeads},
		{"head_dim", want.HeadDim, got.HeadDim},
		{"vocab_size", want.VocabSize, got.VocabSize},
		{"tie_word_embeddings", want.TieWordEmbeddings, got.TieWordEmbeddings},
	} {
		if d[1] != d[2] {
			return fmt.Errorf("lora: the adapter was made for a model with %s %v, this one has %v", d[0], d[1], d[2])
		}
	}
	return nil
}

// Merge returns base with the adapter folded in: W + s·B·A for every
// adapted projection (computed in float32, B·A's products summed in order
// of r), and the fully trained tensors in place of theirs. base is not
// changed.
func (a *Adapter) Merge(base *llama.Params) (*llama.Params, error) {
	if err := a.Check(base.Config); err != nil {
		return nil, err
	}
	v, err := a.View(base)
	if err != nil {
		return nil, err
	}
	out := v.Clone()
	s := float32(a.Scale())
	for _, m := range a.Modules {
		w := m.Kind.Weight(&out.Layers[m.Layer])
		mergeInto(w.Data, m.A.Data, m.B.Data, m.A.Shape[1], m.Rank(), s)
	}
	return out, nil
}

// mergeInto adds s·B·A into w [out, in], rows in parallel.
func mergeInto(w, A, B []float32, in, r int, s float32) {
	out := len(w) / in
	workers := min(runtime.GOMAXPROCS(0), max(1, out/16))
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			delta := make([]float32, in)
			for o := lo; o < hi; o++ {
				clear(delta)
				for k := range r {
					b := B[o*r+k]
					for i, x := range A[k*in : k*in+in] {
						delta[i] += b * x
					}
				}
				row := w[o*in : o*in+in]
				for i, d := range delta {
					row[i] += d * s
				}
			}
		}(g*out/workers, (g+1)*out/workers)
	}
	wg.Wait()
}
