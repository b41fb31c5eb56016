package llama

import (
	"fmt"

	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
)

// Tensor is a named row-major float32 array. Linear weights are [out, in]
// as in Hugging Face (and PyTorch's nn.Linear), so a safetensors tensor of
// the same name loads by copying its data.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Size is the number of elements the shape holds.
func (t *Tensor) Size() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// LayerParams are one decoder layer's tensors. Bias fields are nil when the
// config has no such bias.
type LayerParams struct {
	InputNorm         *Tensor // model.layers.N.input_layernorm.weight [d]
	Q, K, V, O        *Tensor // model.layers.N.self_attn.{q,k,v,o}_proj.weight
	QBias, KBias      *Tensor // ...self_attn.{q,k}_proj.bias
	VBias, OBias      *Tensor // ...self_attn.{v,o}_proj.bias
	PostAttentionNorm *Tensor // model.layers.N.post_attention_layernorm.weight [d]
	Gate, Up, Down    *Tensor // model.layers.N.mlp.{gate,up,down}_proj.weight
	GateBias, UpBias  *Tensor // ...mlp.{gate,up}_proj.bias
	DownBias          *Tensor // ...mlp.down_proj.bias
}

// Params holds a model's parameters, or gradients of the same shapes, as
// named tensors carrying Hugging Face's names:
//
//	model.embed_tokens.weight                     [vocab, d]
//	model.layers.N.input_layernorm.weight         [d]
//	model.layers.N.self_attn.q_proj.weight        [heads·head_dim, d]   (+ .bias)
//	model.layers.N.self_attn.k_proj.weight        [kv_heads·head_dim, d] (+ .bias)
//	model.layers.N.self_attn.v_proj.weight        [kv_heads·head_dim, d] (+ .bias)
//	model.layers.N.self_attn.o_proj.weight        [d, heads·head_dim]   (+ .bias)
//	model.layers.N.post_attention_layernorm.weight [d]
//	model.layers.N.mlp.gate_proj.weight           [intermediate, d]     (+ .bias)
//	model.layers.N.mlp.up_proj.weight             [intermediate, d]     (+ .bias)
//	model.layers.N.mlp.down_proj.weight           [d, intermediate]     (+ .bias)
//	model.norm.weight                             [d]
//	lm_head.weight                                [vocab, d]  (absent when tied)
//
// All tensors are slices of one contiguous allocation (Flat), in the order
// Tensors lists them, so whole-model loops (optimizer, norms, copies) can
// run over one slice.
//
// Loading a Hugging Face checkpoint: for every name in Tensors, find the
// safetensors entry of that name, check its shape against Tensor.Shape and
// convert its values into Tensor.Data. Entries with no tensor here are not
// weights of this model: rotary inv_freq buffers of older exports, and
// lm_head.weight in tied models (some exports carry a copy of the
// embeddings there) — skip them. Exporting is the reverse; for a tied model
// write no lm_head.weight.
type Params struct {
	Config Config // normalized
	Embed  *Tensor
	Layers []LayerParams
	Norm   *Tensor
	LMHead *Tensor // nil when Config.TieWordEmbeddings

	list   []*Tensor
	byName map[string]*Tensor
	flat   []float32
}

// NewParams allocates zeroed parameters (or gradients) for cfg. A config
// beyond the size limits (see Config.ParamCount) is an error before
// anything is allocated.
func NewParams(cfg Config) (*Params, error) {
	p, err := layout(cfg)
	if err != nil {
		return nil, err
	}
	total := 0
	for _, t := range p.list {
		total += t.Size()
	}
	p.flat = make([]float32, total)
	off := 0
	for _, t := range p.list {
		n := t.Size()
		t.Data = p.flat[off : off+n : off+n]
		off += n
	}
	return p, nil
}

// Shapes lists the tensors NewParams would allocate for cfg, by name and
// shape, with no data: what a loader checks a checkpoint's headers against
// before allocating anything.
func Shapes(cfg Config) ([]*Tensor, error) {
	p, err := layout(cfg)
	if err != nil {
		return nil, err
	}
	return p.list, nil
}

// layout builds cfg's tensors without their data.
func layout(cfg Config) (*Params, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := cfg.ParamCount(); err != nil {
		return nil, err
	}
	cfg = cfg.Normalized()
	p := &Params{Config: cfg, byName: map[string]*Tensor{}}
	d, f, hd := cfg.HiddenSize, cfg.IntermediateSize, cfg.HeadDim
	q, kv := cfg.NumAttentionHeads*hd, cfg.NumKeyValueHeads*hd
	add := func(name string, shape ...int) *Tensor {
		t := &Tensor{Name: name, Shape: shape}
		p.list = append(p.list, t)
		p.byName[name] = t
		return t
	}
	p.Embed = add("model.embed_tokens.weight", cfg.VocabSize, d)
	p.Layers = make([]LayerParams, cfg.NumHiddenLayers)
	for i := range p.Layers {
		l := &p.Layers[i]
		pre := fmt.Sprintf("model.layers.%d.", i)
		l.InputNorm = add(pre+"input_layernorm.weight", d)
		l.Q = add(pre+"self_attn.q_proj.weight", q, d)
		if cfg.QKVBias() {
			l.QBias = add(pre+"self_attn.q_proj.bias", q)
		}
		l.K = add(pre+"self_attn.k_proj.weight", kv, d)
		if cfg.QKVBias() {
			l.KBias = add(pre+"self_attn.k_proj.bias", kv)
		}
		l.V = add(pre+"self_attn.v_proj.weight", kv, d)
		if cfg.QKVBias() {
			l.VBias = add(pre+"self_attn.v_proj.bias", kv)
		}
		l.O = add(pre+"self_attn.o_proj.weight", d, q)
		if cfg.OBias() {
			l.OBias = add(pre+"self_attn.o_proj.bias", d)
		}
		l.PostAttentionNorm = add(pre+"post_attention_layernorm.weight", d)
		l.Gate = add(pre+"mlp.gate_proj.weight", f, d)
		if cfg.MLPBias {
			l.GateBias = add(pre+"mlp.gate_proj.bias", f)
		}
		l.Up = add(pre+"mlp.up_proj.weight", f, d)
		if cfg.MLPBias {
			l.UpBias = add(pre+"mlp.up_proj.bias", f)
		}
		l.Down = add(pre+"mlp.down_proj.weight", d, f)
		if cfg.MLPBias {
			l.DownBias = add(pre+"mlp.down_proj.bias", d)
		}
	}
	p.Norm = add("model.norm.weight", d)
	if !cfg.TieWordEmbeddings {
		p.LMHead = add("lm_head.weight", cfg.VocabSize, d)
	}
	return p, nil
}

// InitParams returns parameters initialised as transformers does for a
// from-scratch Llama: every weight matrix (embeddings and LM head included)
// drawn from a normal distribution with mean 0 and standard deviation
// Config.InitializerRange, norm weights 1, biases 0. The draw is
// deterministic: tensor T's values come from a PCG stream seeded with
// (seed, FNV-1a-64 of T's name), standard normals by Box–Muller in float64,
// so the same seed gives the same weights on every machine and adding a
// tensor never changes another's values.
func InitParams(cfg Config, seed uint64) (*Params, error) {
	p, err := NewParams(cfg)
	if err != nil {
		return nil, err
	}
	std := p.Config.InitializerRange
	// Each tensor draws from its own stream (seeded by its name), so the
	// tensors fill in parallel with the same values as one by one.
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, t := range p.list {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			initTensor(t, seed, std)
		}()
	}
	wg.Wait()
	return p, nil
}

func initTensor(t *Tensor, seed uint64, std float64) {
	switch {
	case strings.HasSuffix(t.Name, "norm.weight"):
		for i := range t.Data {
			t.Data[i] = 1
		}
	case strings.HasSuffix(t.Name, ".bias"):
	default:
		h := fnv.New64a()
		h.Write([]byte(t.Name))
		r := rand.New(rand.NewPCG(seed, h.Sum64()))
		for i := 0; i < len(t.Data); i += 2 {
			z0, z1 := boxMuller(r)
			t.Data[i] = float32(std * z0)
			if i+1 < len(t.Data) {
				t.Data[i+1] = float32(std * z1)
			}
		}
	}
}

func boxMuller(r *rand.Rand) (float64, float64) {
	u1 := 1 - r.Float64() // (0, 1]
	u2 := r.Float64()
	rad := math.Sqrt(-2 * math.Log(u1))
	s, c := math.Sincos(2 * math.Pi * u2)
	return rad * c, rad * s
}

// Tensors lists the tensors in a fixed order (embeddings, layers in order,
// final norm, LM head), the order of Flat.
func (p *Params) Tensors() []*Tensor { return p.list }

// Tensor returns the tensor with the given Hugging Face name, or nil.
func (p *Params) Tensor(name string) *Tensor { return p.byName[name] }

// Flat is every parameter in one slice, in Tensors order (nil for a
// Replace view).
func (p *Params) Flat() []float32 { return p.flat }

// NumParams is the number of float32 values held.
func (p *Params) NumParams() int {
	if p.flat != nil {
		return len(p.flat)
	}
	n := 0
	for _, t := range p.list {
		n += len(t.Data)
	}
	return n
}

// Zero sets every value to 0 (for gradients before a step).
func (p *Params) Zero() {
	if p.flat != nil {
		clear(p.flat)
		return
	}
	for _, t := range p.list {
		clear(t.Data)
	}
}

// Clone returns a deep copy (in one allocation, also of a Replace view).
func (p *Params) Clone() *Params {
	q, err := NewParams(p.Config)
	if err != nil {
		panic(fmt.Sprintf("llama: clone of valid params failed: %v", err))
	}
	if p.flat != nil {
		copy(q.flat, p.flat)
		return q
	}
	for i, t := range p.list {
		copy(q.list[i].Data, t.Data)
	}
	return q
}

// Sparse returns Params for cfg holding only the given tensors, by name
// (sharing their data); every other tensor field is nil and Tensors lists
// only these. It is a gradient sink for training that updates some
// tensors and freezes the rest: a backward pass skips a nil tensor's
// gradient.
func Sparse(cfg Config, ts ...*Tensor) (*Params, error) {
	q, err := layout(cfg)
	if err != nil {
		return nil, err
	}
	given := make(map[string]*Tensor, len(ts))
	for _, t := range ts {
		old := q.byName[t.Name]
		if old == nil {
			return nil, fmt.Errorf("llama: sparse params: the model has no tensor %s", t.Name)
		}
		if fmt.Sprint(old.Shape) != fmt.Sprint(t.Shape) || len(t.Data) != old.Size() {
			return nil, fmt.Errorf("llama: sparse params: %s is %v, got a tensor shaped %v (%d values)", t.Name, old.Shape, t.Shape, len(t.Data))
		}
		given[t.Name] = t
	}
	pick := func(f **Tensor) {
		if *f == nil {
			return
		}
		t, ok := given[(*f).Name]
		if !ok {
			*f = nil
			return
		}
		(*f).Data = t.Data
	}
	pick(&q.Embed)
	for i := range q.Layers {
		l := &q.Layers[i]
		for _, f := range []**Tensor{&l.InputNorm, &l.Q, &l.K, &l.V, &l.O, &l.QBias, &l.KBias, &l.VBias, &l.OBias,
			&l.PostAttentionNorm, &l.Gate, &l.Up, &l.Down, &l.GateBias, &l.UpBias, &l.DownBias} {
			pick(f)
		}
	}
	pick(&q.Norm)
	pick(&q.LMHead)
	var list []*Tensor
	for _, t := range q.list {
		if _, ok := given[t.Name]; ok {
			list = append(list, t)
		} else {
			delete(q.byName, t.Name)
		}
	}
	q.list = list
	return q, nil
}

// Replace returns a view of p with some tensors replaced by others of the
// same name and shape: the view shares every tensor's data with p or with
// the replacements, and has no Flat (whole-model loops use Tensors). p is
// not changed.
func (p *Params) Replace(ts ...*Tensor) (*Params, error) {
	repl := make(map[string]*Tensor, len(ts))
	for _, t := range ts {
		old := p.byName[t.Name]
		if old == nil {
			return nil, fmt.Errorf("llama: replace %s: the model has no such tensor", t.Name)
		}
		if fmt.Sprint(old.Shape) != fmt.Sprint(t.Shape) || len(t.Data) != old.Size() {
			return nil, fmt.Errorf("llama: replace %s %v with a tensor shaped %v (%d values)", t.Name, old.Shape, t.Shape, len(t.Data))
		}
		repl[t.Name] = t
	}
	q, err := layout(p.Config)
	if err != nil {
		return nil, err
	}
	for i, t := range q.list {
		src := p.list[i]
		if r, ok := repl[t.Name]; ok {
			src = r
		}
		// layout made t; point it at the source's data.
		t.Data = src.Data
	}
	return q, nil
}

// CopyFrom copies src's values into p; both must be for the same config.
func (p *Params) CopyFrom(src *Params) error {
	if len(src.list) != len(p.list) {
		return fmt.Errorf("copy params: %d tensors into %d", len(src.list), len(p.list))
	}
	for i, t := range p.list {
		if u := src.list[i]; u.Name != t.Name || len(u.Data) != len(t.Data) {
			return fmt.Errorf("copy params: tensor %d is %s (%d values), want %s (%d)", i, u.Name, len(u.Data), t.Name, len(t.Data))
		}
	}
	if p.flat != nil && src.flat != nil {
		copy(p.flat, src.flat)
		return nil
	}
	for i, t := range p.list {
		copy(t.Data, src.list[i].Data)
	}
	return nil
}
