package train

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/tokens/tokencache"
	"github.com/marin-go/marin/backends/train/dataloader"
)

// source is one component's token cache, planned into sequences.
type source struct {
	name    string
	cache   *tokencache.Cache
	packing *dataloader.Packing
	pack    bool
}

// Data is the training stream and the validation sets of a train step:
// every component's cache packed (or padded) into sequences of SeqLen
// tokens, and the mixture mapping a global training sequence index to a
// component's sequence. Its only state is that index, which the trainer
// keeps (TrainerState.NextSequence): Fill(g) is a pure function of the
// caches, the config and g.
type Data struct {
	SeqLen int
	train  []*source // weighted components, by name
	valid  []*source // validation-only components, by name
	mix    *dataloader.Mixture

	// From the caches' manifests (all components share them).
	Tokenizer tokencache.TokenizerInfo
	Format    json.RawMessage
}

// OpenData opens the caches of cfg's components (local directories or
// storage URLs, see tokencache.OpenURL) and plans their sequences.
func OpenData(ctx context.Context, cfg *Config) (*Data, error) {
	d := &Data{SeqLen: cfg.MaxSeqLen}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	open := func(name string) (*source, error) {
		comp := cfg.Data.Components[name]
		dir := comp.Cache
		c, err := tokencache.OpenURL(ctx, comp.Cache)
		if err != nil {
			return nil, fmt.Errorf("data component %s: %w", name, err)
		}
		// The manifest's checksums, once per shard (remembered by digest):
		// bytes changed since tokenizing must not train silently.
		if err := c.VerifyCached(); err != nil {
			c.Close()
			return nil, fmt.Errorf("data component %s: %w", name, err)
		}
		s := &source{name: name, cache: c, pack: packOf(c.Manifest().Format)}
		s.packing, err = dataloader.Pack(c, cfg.MaxSeqLen, s.pack)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("data component %s: %w", name, err)
		}
		if s.packing.Len() == 0 {
			c.Close()
			return nil, fmt.Errorf("data component %s: cache %s holds no documents", name, dir)
		}
		m := c.Manifest()
		if d.Tokenizer.SHA256 == "" {
			d.Tokenizer, d.Format = m.Tokenizer, m.Format
		} else if m.Tokenizer.SHA256 != d.Tokenizer.SHA256 {
			c.Close()
			return nil, fmt.Errorf("data component %s was tokenized with %s (sha256 %.12s), another component with %s (sha256 %.12s): all components must share one tokenizer", name, m.Tokenizer.Name, m.Tokenizer.SHA256, d.Tokenizer.Name, d.Tokenizer.SHA256)
		}
		return s, nil
	}
	var comps []dataloader.Component
	for _, name := range cfg.trainNames() {
		s, err := open(name)
		if err != nil {
			return nil, err
		}
		d.train = append(d.train, s)
		comps = append(comps, dataloader.Component{Name: name, Len: s.packing.Len(), Weight: cfg.Data.Components[name].Weight})
	}
	for _, name := range cfg.validationNames() {
		s, err := open(name)
		if err != nil {
			return nil, err
		}
		d.valid = append(d.valid, s)
	}
	mix, err := dataloader.NewMixture(comps, cfg.MixtureBlockSize, cfg.Seed, cfg.shuffle())
	if err != nil {
		return nil, fmt.Errorf("data mixture: %w", err)
	}
	d.mix = mix
	ok = true
	return d, nil
}

// packOf reads the chat format's "pack" flag from a cache manifest
// (default true, as ChatFormat's).
func packOf(format json.RawMessage) bool {
	var f struct {
		Pack *bool `json:"pack"`
	}
	if len(format) == 0 || json.Unmarshal(format, &f) != nil || f.Pack == nil {
		return true
	}
	return *f.Pack
}

// Close unmaps the caches.
func (d *Data) Close() {
	for _, s := range append(append([]*source(nil), d.train...), d.valid...) {
		s.cache.Close()
	}
}

// EpochSequences is the number of training sequences in one pass over
// every weighted component.
func (d *Data) EpochSequences() int64 {
	var n int64
	for _, s := range d.train {
		n += s.packing.Len()
	}
	return n
}

// MaxTokenID is the largest id the caches may hold (their tokenizer's
// vocabulary size − 1).
func (d *Data) MaxTokenID() int { return d.Tokenizer.VocabSize - 1 }

// FillTrain writes global training sequence g into row r of b.
func (d *Data) FillTrain(g int64, b *llama.Batch, r int, seq *dataloader.Sequence) error {
	ci, si := d.mix.At(g)
	// Mixture indexes the components given to NewMixture: d.train's order.
	s := d.train[ci]
	return fillRow(s, si, b, r, seq)
}

func fillRow(s *source, si int64, b *llama.Batch, r int, seq *dataloader.Sequence) error {
	if err := s.packing.Fill(s.cache, si, seq); err != nil {
		return fmt.Errorf("data component %s: %w", s.name, err)
	}
	T := b.T
	off := r * T
	copy(b.Tokens[off:off+T], seq.Tokens)
	copy(b.Segments[off:off+T], seq.Segments)
	copy(b.Positions[off:off+T], seq.Positions)
	for t, m := range seq.LossMask {
		b.LossMask[off+t] = m != 0
	}
	return nil
}

// ComponentCounts returns how many of the global training sequences
// [from, to) each weighted component supplies, by name.
func (d *Data) ComponentCounts(from, to int64) map[string]int64 {
	out := map[string]int64{}
	for g := from; g < to; g++ {
		ci, _ := d.mix.At(g)
		out[d.train[ci].name]++
	}
	return out
}
