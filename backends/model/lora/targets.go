package lora

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/marin-go/marin/backends/model/llama"
)

// Kind is a decoder layer's projection, the linear layers LoRA adapts.
type Kind int

// The projections of a Llama decoder layer, in the order adapters list them.
const (
	Q Kind = iota
	K
	V
	O
	Gate
	Up
	Down
	NumKinds = 7
)

var kindNames = [NumKinds]string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// String is the projection's module name (q_proj, …, down_proj).
func (k Kind) String() string { return kindNames[k] }

// ModuleName is the projection's module name in layer l, as in
// transformers' LlamaForCausalLM (model.layers.3.self_attn.q_proj).
func (k Kind) ModuleName(l int) string {
	block := "self_attn"
	if k >= Gate {
		block = "mlp"
	}
	return "model.layers." + strconv.Itoa(l) + "." + block + "." + kindNames[k]
}

// Dims are the projection's input and output widths in model c.
func (k Kind) Dims(c llama.Config) (in, out int) {
	c = c.Normalized()
	d, f := c.HiddenSize, c.IntermediateSize
	q, kv := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	switch k {
	case Q:
		return d, q
	case K, V:
		return d, kv
	case O:
		return q, d
	case Gate, Up:
		return d, f
	}
	return f, d
}

// Weight is the projection's weight in layer l's tensors.
func (k Kind) Weight(l *llama.LayerParams) *llama.Tensor {
	return [NumKinds]*llama.Tensor{l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down}[k]
}

// Bias is the projection's bias (nil when the model has none).
func (k Kind) Bias(l *llama.LayerParams) *llama.Tensor {
	return [NumKinds]*llama.Tensor{l.QBias, l.KBias, l.VBias, l.OBias, l.GateBias, l.UpBias, l.DownBias}[k]
}

// moduleInfo is one module of the model as transformers names it (what
// PEFT matches target_modules and modules_to_save against).
type moduleInfo struct {
	name  string
	layer int  // -1 outside the decoder layers
	kind  Kind // for projections
	proj  bool // a decoder projection (a LoRA target)
	leaf  string
}

// modules lists the model's modules in transformers' order
// (named_modules of LlamaForCausalLM, without the root).
func modules(c llama.Config) []moduleInfo {
	c = c.Normalized()
	out := []moduleInfo{{name: "model", layer: -1}, {name: "model.embed_tokens", layer: -1, leaf: "embedding"}, {name: "model.layers", layer: -1}}
	for l := range c.NumHiddenLayers {
		p := "model.layers." + strconv.Itoa(l)
		out = append(out, moduleInfo{name: p, layer: l}, moduleInfo{name: p + ".self_attn", layer: l})
		for k := Q; k <= O; k++ {
			out = append(out, moduleInfo{name: k.ModuleName(l), layer: l, kind: k, proj: true})
		}
		out = append(out, moduleInfo{name: p + ".mlp", layer: l})
		for k := Gate; k <= Down; k++ {
			out = append(out, moduleInfo{name: k.ModuleName(l), layer: l, kind: k, proj: true})
		}
		out = append(out, moduleInfo{name: p + ".mlp.act_fn", layer: l, leaf: "activation"},
			moduleInfo{name: p + ".input_layernorm", layer: l, leaf: "RMSNorm"},
			moduleInfo{name: p + ".post_attention_layernorm", layer: l, leaf: "RMSNorm"})
	}
	out = append(out, moduleInfo{name: "model.norm", layer: -1, leaf: "RMSNorm"},
		moduleInfo{name: "model.rotary_emb", layer: -1, leaf: "rotary embedding"},
		moduleInfo{name: "lm_head", layer: -1, leaf: "output head"})
	return out
}

func compilePattern(p string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + p + `)$`)
}

// matcher is target_modules' (or exclude_modules') test of a module name,
// PEFT's check_target_module_exists: a pattern matches the whole name, a
// list entry the whole name or a dotted suffix of it.
func (t Targets) matcher() (func(name string) bool, error) {
	if t.Pattern != "" {
		re, err := compilePattern(t.Pattern)
		if err != nil {
			return nil, err
		}
		return re.MatchString, nil
	}
	return func(name string) bool {
		for _, n := range t.Names {
			if name == n || strings.HasSuffix(name, "."+n) {
				return true
			}
		}
		return false
	}, nil
}

// defaultTargets is PEFT's target_modules for a model type without one
// (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING).
var defaultTargets = []string{"q_proj", "v_proj"}

// layout is what an adapter holds for a model: the adapted projections
// and the base tensors trained in full, in model order.
type layout struct {
	modules []moduleRef
	full    []string // llama.Params names
}

type moduleRef struct {
	layer int
	kind  Kind
	r     int
}

// resolve lays s out over model c, as PEFT's injection would: which
// projections are adapted and which tensors train in full. It refuses what
// PEFT would refuse (a target that is not a linear layer, a target that
// matches nothing) and what marin does not do (LoRA on the embeddings or
// on lm_head: train them in full with modules_to_save).
func (s Spec) resolve(c llama.Config) (layout, error) {
	var lay layout
	if err := s.Validate(); err != nil {
		return lay, err
	}
	c = c.Normalized()
	mods := modules(c)
	inLayers := func(l int) bool {
		if s.Layers == nil {
			return true
		}
		for _, x := range s.Layers {
			if x == l {
				return true
			}
		}
		return false
	}
	for _, l := range s.Layers {
		if l >= c.NumHiddenLayers {
			return lay, fmt.Errorf("lora: layers_to_transform names layer %d; the model has %d", l, c.NumHiddenLayers)
		}
	}
	targets := s.Targets
	if targets.IsZero() {
		targets = Targets{Names: defaultTargets}
	}
	if targets.Names != nil && len(targets.Names) == 0 {
		return lay, fmt.Errorf("lora: target_modules is empty")
	}
	exclude := func(string) bool { return false }
	if !s.Exclude.IsZero() {
		m, err := s.Exclude.matcher()
		if err != nil {
			return lay, fmt.Errorf("lora: exclude_modules: %w", err)
		}
		exclude = m
	}
	targeted := map[string]bool{}
	if targets.isAllLinear() {
		for _, m := range mods {
			if m.proj && inLayers(m.layer) && !exclude(m.name) {
				lay.modules = append(lay.modules, moduleRef{layer: m.layer, kind: m.kind, r: s.R})
				targeted[m.name] = true
			}
		}
	} else {
		match, err := targets.matcher()
		if err != nil {
			return lay, fmt.Errorf("lora: target_modules: %w", err)
		}
		for _, m := range mods {
			if !match(m.name) || exclude(m.name) {
				continue
			}
			if s.Layers != nil && (m.layer < 0 || !inLayers(m.layer)) {
				continue
			}
			switch {
			case m.proj:
				lay.modules = append(lay.modules, moduleRef{layer: m.layer, kind: m.kind, r: s.R})
				targeted[m.name] = true
			case m.leaf == "embedding":
				return lay, fmt.Errorf("lora: target_modules matches %s: LoRA on the embeddings is not supported; train them in full with modules_to_save = [\"embed_tokens\"]", m.name)
			case m.leaf == "output head":
				return lay, fmt.Errorf("lora: target_modules matches lm_head: LoRA on the output head is not supported; train it in full with modules_to_save = [\"lm_head\"]")
			case m.leaf != "":
				return lay, fmt.Errorf("lora: target_modules matches %s, a %s: only the linear projections (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj) can be adapted", m.name, m.leaf)
			default:
				return lay, fmt.Errorf("lora: target_modules matches %s, which holds other modules: name the projections (q_proj, …, down_proj) or use %q", m.name, AllLinear)
			}
		}
	}
	if len(lay.modules) == 0 {
		return lay, fmt.Errorf("lora: target_modules %s matches no linear projection of the model (its modules are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj in each of %d layers)", describeTargets(targets), c.NumHiddenLayers)
	}

	// Tensors trained in full: modules_to_save (PEFT: a module whose name
	// ends with an entry, every parameter under it), then biases.
	shapes, err := llama.Shapes(c)
	if err != nil {
		return lay, err
	}
	full := map[string]bool{}
	for _, want := range s.ModulesToSave {
		found := false
		for _, m := range mods {
			if !strings.HasSuffix(m.name, want) {
				continue
			}
			if m.name == "lm_head" && c.TieWordEmbeddings {
				return lay, fmt.Errorf("lora: modules_to_save names lm_head, which this model ties to embed_tokens (tie_word_embeddings): name embed_tokens to train both")
			}
			for _, t := range shapes {
				if !strings.HasPrefix(t.Name, m.name+".") {
					continue
				}
				found = true
				owner := strings.TrimSuffix(strings.TrimSuffix(t.Name, ".weight"), ".bias")
				if targeted[owner] {
					return lay, fmt.Errorf("lora: %s is both adapted (target_modules) and trained in full (modules_to_save %q)", owner, want)
				}
				full[t.Name] = true
			}
		}
		if !found {
			return lay, fmt.Errorf("lora: modules_to_save %q matches no module with weights (e.g. embed_tokens, lm_head, norm)", want)
		}
	}
	switch s.bias() {
	case BiasAll:
		for _, t := range shapes {
			if strings.HasSuffix(t.Name, ".bias") {
				full[t.Name] = true
			}
		}
	case BiasLoRAOnly:
		for _, t := range shapes {
			if strings.HasSuffix(t.Name, ".bias") && targeted[strings.TrimSuffix(t.Name, ".bias")] {
				full[t.Name] = true
			}
		}
	}
	for _, t := range shapes {
		if full[t.Name] {
			lay.full = append(lay.full, t.Name)
		}
	}
	return lay, nil
}

func describeTargets(t Targets) string {
	if t.Pattern != "" {
		return strconv.Quote(t.Pattern)
	}
	q := make([]string, len(t.Names))
	for i, n := range t.Names {
		q[i] = strconv.Quote(n)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Resolved returns s with target_modules as PEFT records it after
// injecting into model c: "all-linear" becomes the sorted names of the
// adapted projections; a list or a pattern stays as given; no targets
// become PEFT's default list.
func (s Spec) Resolved(c llama.Config) (Spec, error) {
	lay, err := s.resolve(c)
	if err != nil {
		return s, err
	}
	switch {
	case s.Targets.isAllLinear():
		seen := map[string]bool{}
		var names []string
		for _, m := range lay.modules {
			if n := m.kind.String(); !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
		sort.Strings(names)
		s.Targets = Targets{Names: names}
	case s.Targets.IsZero():
		s.Targets = Targets{Names: append([]string(nil), defaultTargets...)}
	}
	return s, nil
}
