package starlib

import (
	"fmt"
	"math"
	"sort"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/marin-go/marin/host/graph"
)

// MixtureConfig is the value of lm_mixture_data_config: tokenized components
// sampled with relative weights. Components without a weight are
// validation-only.
type MixtureConfig struct {
	names     []string // sorted
	caches    map[string]starlark.Value
	weights   map[string]float64 // raw weights as given; missing → validation only
	maxSeqLen starlark.Value
	perm      string
	shuffle   bool
	blockSize int64
	stop      string
	pos       syntax.Position
	// src is where the script wrote each part, by path relative to the
	// data config ("components.tulu", "components.tulu.weight", …).
	src map[string]graph.Source
}

var _ starlark.HasAttrs = (*MixtureConfig)(nil)

func (m *MixtureConfig) String() string {
	return fmt.Sprintf("LMMixtureDatasetConfig(components=%v, max_seq_len=%s)", m.names, m.maxSeqLen)
}
func (m *MixtureConfig) Type() string          { return "LMMixtureDatasetConfig" }
func (m *MixtureConfig) Freeze()               {}
func (m *MixtureConfig) Truth() starlark.Bool  { return starlark.True }
func (m *MixtureConfig) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: %s", m.Type()) }
func (m *MixtureConfig) AttrNames() []string {
	return []string{"components", "max_seq_len", "mixture_block_size", "permutation_type", "shuffle", "stop_strategy", "train_weights"}
}
func (m *MixtureConfig) Attr(name string) (starlark.Value, error) {
	switch name {
	case "components":
		d := starlark.NewDict(len(m.names))
		for _, n := range m.names {
			_ = d.SetKey(starlark.String(n), m.caches[n])
		}
		d.Freeze()
		return d, nil
	case "train_weights":
		d := starlark.NewDict(len(m.names))
		for n, w := range m.normalized() {
			_ = d.SetKey(starlark.String(n), starlark.Float(w))
		}
		d.Freeze()
		return d, nil
	case "max_seq_len":
		return m.maxSeqLen, nil
	case "permutation_type":
		return starlark.String(m.perm), nil
	case "shuffle":
		return starlark.Bool(m.shuffle), nil
	case "mixture_block_size":
		return starlark.MakeInt64(m.blockSize), nil
	case "stop_strategy":
		return starlark.String(m.stop), nil
	}
	return nil, nil
}

// normalized returns train weights summing to one. Weights that cannot be
// normalised (a negative one, or all zero) are returned as given, for the
// train op's schema to report.
func (m *MixtureConfig) normalized() map[string]float64 {
	var sum float64
	bad := false
	for _, w := range m.weights {
		sum += w
		bad = bad || w < 0
	}
	out := map[string]float64{}
	for n, w := range m.weights {
		if bad || sum <= 0 {
			out[n] = w
		} else {
			out[n] = w / sum
		}
	}
	return out
}

// sources records where the script wrote each part of the mixture, under
// the config path prefix.
func (m *MixtureConfig) sources(prefix string, out map[string]graph.Source) {
	out[prefix] = graph.Source{Pos: posString(m.pos), Attr: "lm_mixture_data_config"}
	for k, src := range m.src {
		out[joinKey(prefix, k)] = src
	}
}

// configValue is the mixture as it appears in a train step's config. Weights
// are normalised, so {a: 1, b: 1} and {a: 0.5, b: 0.5} are the same
// experiment and share a path, while any real change of proportion moves it.
func (m *MixtureConfig) configValue() (any, error) {
	comps := map[string]any{}
	norm := m.normalized()
	for _, n := range m.names {
		cache, err := toConfig(m.caches[n])
		if err != nil {
			return nil, fmt.Errorf("component %q: %w", n, err)
		}
		w, train := norm[n]
		comps[n] = map[string]any{"cache": cache, "weight": w, "validation_only": !train || w == 0}
	}
	msl, err := toConfig(m.maxSeqLen)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"components":         comps,
		"max_seq_len":        msl,
		"permutation_type":   m.perm,
		"shuffle":            m.shuffle,
		"mixture_block_size": m.blockSize,
		"stop_strategy":      m.stop,
	}, nil
}

// singleComponent wraps one tokenized step as a mixture with weight 1.
func singleComponent(name string, cache starlark.Value, maxSeqLen starlark.Value, blockSize int64, stop string) *MixtureConfig {
	return &MixtureConfig{
		names:     []string{name},
		caches:    map[string]starlark.Value{name: cache},
		weights:   map[string]float64{name: 1},
		maxSeqLen: maxSeqLen,
		perm:      "feistel",
		shuffle:   true,
		blockSize: blockSize,
		stop:      stop,
	}
}

// lm_mixture_data_config(components, weights, max_seq_len=None, permutation_type="feistel",
// shuffle=True, missing_weights_are_validation=True, mixture_block_size=2048, stop_strategy="restart")
//
// `datasets` and `mixture_weights` are accepted as the tutorial's names.
func lmMixtureDataConfig(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		components, datasets, weights, mixtureWeights starlark.Value = starlark.None, starlark.None, starlark.None, starlark.None
		maxSeqLen                                     starlark.Value = starlark.None
		perm                                                         = "feistel"
		shuffle                                                      = true
		missingAreValidation                                         = true
		blockSize                                                    = 2048
		stop                                                         = "restart"
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"components?", &components, "weights?", &weights, "max_seq_len?", &maxSeqLen,
		"permutation_type?", &perm, "shuffle?", &shuffle, "missing_weights_are_validation?", &missingAreValidation,
		"mixture_block_size?", &blockSize, "stop_strategy?", &stop,
		"datasets?", &datasets, "mixture_weights?", &mixtureWeights); err != nil {
		return nil, err
	}
	if components == starlark.None {
		components = datasets
	} else if datasets != starlark.None {
		return nil, fmt.Errorf("%s: give components or datasets, not both", b.Name())
	}
	if weights == starlark.None {
		weights = mixtureWeights
	} else if mixtureWeights != starlark.None {
		return nil, fmt.Errorf("%s: give weights or mixture_weights, not both", b.Name())
	}
	cd, ok := components.(*starlark.Dict)
	if !ok || cd.Len() == 0 {
		return nil, fmt.Errorf("%s: components must be a non-empty dict of name -> tokenized step", b.Name())
	}
	wd, ok := weights.(*starlark.Dict)
	if !ok {
		return nil, fmt.Errorf("%s: weights must be a dict of name -> number, got %s", b.Name(), weights.Type())
	}
	// Values the train op checks (max_seq_len, permutation_type,
	// stop_strategy, mixture_block_size, the weights' signs) are its schema's
	// business; here only what the builtin itself needs.
	cs := site(thread)
	compArg, weightArg := "components", "weights"
	if datasets != starlark.None {
		compArg = "datasets"
	}
	if mixtureWeights != starlark.None {
		weightArg = "mixture_weights"
	}
	m := &MixtureConfig{
		caches: map[string]starlark.Value{}, weights: map[string]float64{},
		maxSeqLen: maxSeqLen, perm: perm, shuffle: shuffle, blockSize: int64(blockSize), stop: stop,
		pos: cs.pos, src: map[string]graph.Source{},
	}
	for _, kw := range []string{"max_seq_len", "permutation_type", "shuffle", "mixture_block_size", "stop_strategy"} {
		m.src[kw] = graph.Source{Pos: posString(cs.at(kw)), Attr: "lm_mixture_data_config." + kw}
	}
	for _, item := range cd.Items() {
		n, ok := starlark.AsString(item[0])
		if !ok {
			return nil, fmt.Errorf("%s: component names must be strings, got %s", b.Name(), item[0].Type())
		}
		switch item[1].(type) {
		case *Step, *InputName, starlark.String:
		default:
			return nil, fmt.Errorf("%s: component %q must be a tokenized step, got %s", b.Name(), n, item[1].Type())
		}
		m.names = append(m.names, n)
		m.caches[n] = item[1]
		m.src["components."+n] = graph.Source{Pos: posString(cs.at(compArg + "." + n)), Attr: fmt.Sprintf("lm_mixture_data_config.%s[%q]", compArg, n)}
	}
	sort.Strings(m.names)
	for _, item := range wd.Items() {
		n, _ := starlark.AsString(item[0])
		if _, ok := m.caches[n]; !ok {
			return nil, fmt.Errorf("%s: weight for %q, which is not a component%s", b.Name(), n, suggest(n, m.names))
		}
		var w float64
		switch x := item[1].(type) {
		case starlark.Int:
			w = float64(x.Float())
		case starlark.Float:
			w = float64(x)
		default:
			return nil, fmt.Errorf("%s: weight of %q must be a number, got %s", b.Name(), n, item[1].Type())
		}
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("%s: weight of %q must be a finite number, got %v", b.Name(), n, w)
		}
		m.src["components."+n+".weight"] = graph.Source{Pos: posString(cs.at(weightArg + "." + n)), Attr: fmt.Sprintf("lm_mixture_data_config.%s[%q]", weightArg, n)}
		if w != 0 {
			m.weights[n] = w
		}
	}
	if !missingAreValidation {
		for _, n := range m.names {
			if _, ok := m.weights[n]; !ok {
				return nil, fmt.Errorf("%s: component %q has no weight (set missing_weights_are_validation=True to use it for validation only)", b.Name(), n)
			}
		}
	}
	return m, nil
}
