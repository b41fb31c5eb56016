package dataloader

import (
	"fmt"
	"math"
	"sort"
)

// Component is one dataset of a mixture: Len sequences, drawn with a
// relative Weight (0: validation only, never drawn for training).
type Component struct {
	Name   string
	Len    int64
	Weight float64
}

// Mixture maps a global training sequence index to (component, sequence) as
// Levanter's MixtureDataset does: the stream is cut into blocks of BlockSize
// sequences; each block holds a fixed count of each component (weights
// times block size, rounded by largest remainder), in an order shuffled per
// block; each component is read in its own seeded per-epoch shuffle and
// restarts when exhausted ("restart", the only stop strategy Marin has).
type Mixture struct {
	comps     []Component
	train     []int   // indices of components with weight > 0
	counts    []int64 // per train component: sequences per block
	blockSize int64
	seed      int64
	shuffle   bool

	// The most recent block's slot layout, cached: At is called with
	// increasing indices almost always.
	cachedBlock int64
	slotComp    []int                     // slot -> train component
	slotRank    []int64                   // slot -> rank among its component's slots in the block
	perms       map[[2]int64]*Permutation // (component, epoch) -> shuffle
}

// NewMixture validates components and weights. Weights are relative.
func NewMixture(comps []Component, blockSize int, seed int64, shuffle bool) (*Mixture, error) {
	if blockSize <= 0 {
		return nil, fmt.Errorf("mixture block size must be positive, got %d", blockSize)
	}
	m := &Mixture{comps: comps, blockSize: int64(blockSize), seed: seed, shuffle: shuffle, cachedBlock: -1}
	var total float64
	for i, c := range comps {
		if c.Weight < 0 || math.IsNaN(c.Weight) || math.IsInf(c.Weight, 0) {
			return nil, fmt.Errorf("component %q: weight %v must be a finite number >= 0", c.Name, c.Weight)
		}
		if c.Weight > 0 {
			if c.Len <= 0 {
				return nil, fmt.Errorf("component %q has weight %v but no sequences", c.Name, c.Weight)
			}
			m.train = append(m.train, i)
			total += c.Weight
		}
	}
	if len(m.train) == 0 {
		return nil, fmt.Errorf("no component has a positive weight")
	}
	// Largest-remainder rounding: counts sum to blockSize exactly.
	type rem struct {
		i    int
		frac float64
	}
	m.counts = make([]int64, len(m.train))
	var assigned int64
	var rems []rem
	for j, i := range m.train {
		exact := comps[i].Weight / total * float64(blockSize)
		m.counts[j] = int64(math.Floor(exact))
		assigned += m.counts[j]
		rems = append(rems, rem{j, exact - math.Floor(exact)})
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].frac > rems[b].frac })
	for k := 0; assigned < m.blockSize; k++ {
		m.counts[rems[k%len(rems)].i]++
		assigned++
	}
	return m, nil
}

// Counts returns each training component's sequences per block, by name.
func (m *Mixture) Counts() map[string]int64 {
	out := map[string]int64{}
	for j, i := range m.train {
		out[m.comps[i].Name] = m.counts[j]
	}
	return out
}

// At returns the component index (into the slice given to NewMixture) and
// the sequence index within it for global training sequence g.
func (m *Mixture) At(g int64) (int, int64) {
	b, s := g/m.blockSize, g%m.blockSize
	if b != m.cachedBlock {
		m.layoutBlock(b)
	}
	j := m.slotComp[s]
	k := b*m.counts[j] + m.slotRank[s] // the component's k-th draw overall
	c := m.comps[m.train[j]]
	epoch, within := k/c.Len, k%c.Len
	if m.shuffle {
		within = int64(m.perm(m.train[j], epoch).At(uint64(within)))
	}
	return m.train[j], within
}

// perm is component i's shuffle in an epoch; each epoch reshuffles.
func (m *Mixture) perm(i int, epoch int64) *Permutation {
	k := [2]int64{int64(i), epoch}
	if p, ok := m.perms[k]; ok {
		return p
	}
	if m.perms == nil || len(m.perms) > 1024 {
		m.perms = map[[2]int64]*Permutation{}
	}
	c := m.comps[i]
	p := NewPermutation(uint64(c.Len), key(m.seed, "component", c.Name, epoch))
	m.perms[k] = p
	return p
}

func (m *Mixture) layoutBlock(b int64) {
	n := m.blockSize
	// Slots in canonical order: counts[0] of component 0, then component 1, …
	canon := make([]int, 0, n)
	for j, c := range m.counts {
		for r := int64(0); r < c; r++ {
			canon = append(canon, j)
		}
	}
	m.slotComp = make([]int, n)
	if m.shuffle {
		p := NewPermutation(uint64(n), key(m.seed, "block", b))
		for s := int64(0); s < n; s++ {
			m.slotComp[s] = canon[p.At(uint64(s))]
		}
	} else {
		// Interleave deterministically: spread each component evenly.
		copy(m.slotComp, interleave(m.counts, n))
	}
	m.slotRank = make([]int64, n)
	seen := make([]int64, len(m.counts))
	for s := int64(0); s < n; s++ {
		j := m.slotComp[s]
		m.slotRank[s] = seen[j]
		seen[j]++
	}
	m.cachedBlock = b
}

// interleave orders slots so each component is spread evenly through the
// block (a smooth weighted round robin), used when shuffle is off.
func interleave(counts []int64, n int64) []int {
	out := make([]int, 0, n)
	credit := make([]float64, len(counts))
	for s := int64(0); s < n; s++ {
		best := -1
		for j, c := range counts {
			credit[j] += float64(c)
			if c > 0 && (best < 0 || credit[j] > credit[best]) {
				best = j
			}
		}
		credit[best] -= float64(n)
		out = append(out, best)
	}
	return out
}
