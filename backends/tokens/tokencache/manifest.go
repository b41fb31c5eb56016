// Package tokencache is the on-disk token cache that the tokenize op writes
// and training reads: per shard, three flat little-endian arrays that can be
// memory-mapped, and a manifest.
//
//	{dir}/manifest.json                  written last: the cache is complete
//	{dir}/shards/shard_00000.ids         uint32 token ids, all documents back to back
//	{dir}/shards/shard_00000.mask        uint8 loss mask, one per token (1 = training target)
//	{dir}/shards/shard_00000.offsets     uint64 document offsets into ids: docs+1 entries, 0 first
//	{dir}/shards/shard_00000.json        the shard's counts and checksums, written after its data
//
// Document d of a shard is ids[offsets[d]:offsets[d+1]] with the same range of
// mask. mask[i] = 1 means token i is a target (predicted from the tokens
// before it); a loader shifts it by one for next-token labels. The arrays
// have no header, so numpy reads them too:
// np.memmap(path, dtype="<u4") for ids, "<u1" for mask and "<u8" for offsets.
//
// Every file appears only when complete: data files are written under
// temporary names, synced and renamed, then the shard's .json (its commit
// marker), and manifest.json after all shards. A shard whose .json exists and
// whose files match its sizes and sha256 is complete; a writer that resumes
// after a crash keeps such shards and rewrites the others.
//
// Open maps a complete cache and checks what is cheap (sizes, offsets,
// counts); Verify also checks the sha256 of every file and the mask values.
package tokencache

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/marin-go/marin/plugins/storage"
)

// Layout names the format in manifest.json; Version is bumped on any change
// a reader of an older version would misread.
const (
	Layout  = "marin.token_cache"
	Version = 1

	ManifestName = "manifest.json"
	ShardsDir    = "shards"
)

// DTypes describes the arrays, for readers in other languages.
type DTypes struct {
	IDs       string `json:"ids"`     // "uint32"
	Mask      string `json:"mask"`    // "uint8"
	Offsets   string `json:"offsets"` // "uint64"
	ByteOrder string `json:"byte_order"`
}

// TheDTypes are the array types of Version 1.
var TheDTypes = DTypes{IDs: "uint32", Mask: "uint8", Offsets: "uint64", ByteOrder: "little"}

// FileInfo is one data file of a shard.
type FileInfo struct {
	Path   string `json:"path"` // relative to the cache directory, slash-separated
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Counts are what a shard or a whole cache holds. Conversations is what
// was read; Documents what was kept; Skipped the rest by reason.
type Counts struct {
	Conversations   int64            `json:"conversations"`
	Documents       int64            `json:"documents"`
	Tokens          int64            `json:"tokens"`
	TrainableTokens int64            `json:"trainable_tokens"`
	MaxDocTokens    int64            `json:"max_document_tokens"`
	Skipped         map[string]int64 `json:"skipped"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Conversations += o.Conversations
	c.Documents += o.Documents
	c.Tokens += o.Tokens
	c.TrainableTokens += o.TrainableTokens
	c.MaxDocTokens = max(c.MaxDocTokens, o.MaxDocTokens)
	for k, v := range o.Skipped {
		if c.Skipped == nil {
			c.Skipped = map[string]int64{}
		}
		c.Skipped[k] += v
	}
}

// SkippedTotal is the number of skipped conversations.
func (c Counts) SkippedTotal() int64 {
	var n int64
	for _, v := range c.Skipped {
		n += v
	}
	return n
}

// SkipExample is one skipped conversation, kept so a person can look.
type SkipExample struct {
	Reason string `json:"reason"`
	Doc    string `json:"doc"`              // the document id
	Source string `json:"source,omitempty"` // the input shard
	Detail string `json:"detail,omitempty"`
}

// ShardInfo is a shard's .json: its source, counts and files.
type ShardInfo struct {
	Name        string `json:"name"`             // e.g. "shard_00000"
	Source      string `json:"source,omitempty"` // the input it was made from, relative to the input root
	SourceBytes int64  `json:"source_bytes"`     // the input's size, to tell a changed input on resume
	// Fingerprint identifies what else the shard's bytes depend on (the
	// tokenizer, the format, the writer's code), so a resuming writer keeps
	// only shards it would have written the same way.
	Fingerprint  string        `json:"fingerprint,omitempty"`
	Counts       Counts        `json:"counts"`
	SkipExamples []SkipExample `json:"skip_examples,omitempty"`
	IDs          FileInfo      `json:"ids"`
	Mask         FileInfo      `json:"mask"`
	Offsets      FileInfo      `json:"offsets"`
}

// Files returns the shard's three data files.
func (s *ShardInfo) Files() []FileInfo { return []FileInfo{s.IDs, s.Mask, s.Offsets} }

// TokenizerInfo says which tokenizer made the ids.
type TokenizerInfo struct {
	Name      string `json:"name"`       // as the step config gave it: a hub id or a path
	File      string `json:"file"`       // the tokenizer.json used
	SHA256    string `json:"sha256"`     // of that file's bytes
	VocabSize int    `json:"vocab_size"` // ids are below this
}

// PluginInfo names a plugin that took part (a format plugin).
type PluginInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Manifest is manifest.json.
type Manifest struct {
	Layout       string          `json:"layout"`
	Version      int             `json:"version"`
	DTypes       DTypes          `json:"dtypes"`
	Tokenizer    TokenizerInfo   `json:"tokenizer"`
	Format       json.RawMessage `json:"format,omitempty"` // the chat format config
	FormatPlugin *PluginInfo     `json:"format_plugin,omitempty"`
	// IsValidation marks a cache made for evaluation only; the mixture loader
	// never trains on it.
	IsValidation bool          `json:"is_validation"`
	Input        string        `json:"input"` // the documents the cache was made from
	Counts       Counts        `json:"counts"`
	Shards       []ShardInfo   `json:"shards"`
	SkipExamples []SkipExample `json:"skip_examples,omitempty"`
}

// Check validates the manifest's own consistency: layout and version,
// shard names and the counts adding up.
func (m *Manifest) Check() error {
	if m.Layout != Layout {
		return fmt.Errorf("layout %q is not %q", m.Layout, Layout)
	}
	if m.Version != Version {
		return fmt.Errorf("layout version %d; this build reads version %d", m.Version, Version)
	}
	if m.DTypes != TheDTypes {
		return fmt.Errorf("dtypes %+v; version %d has %+v", m.DTypes, Version, TheDTypes)
	}
	var sum Counts
	seen := map[string]bool{}
	for i, s := range m.Shards {
		if !validShardName(s.Name) || seen[s.Name] {
			return fmt.Errorf("shards[%d]: bad or repeated name %q", i, s.Name)
		}
		seen[s.Name] = true
		for _, f := range s.Files() {
			if f.Path == "" || filepath.IsAbs(f.Path) || !filepath.IsLocal(filepath.FromSlash(f.Path)) {
				return fmt.Errorf("shards[%d] (%s): file path %q is not inside the cache", i, s.Name, f.Path)
			}
		}
		sum.Add(s.Counts)
	}
	c := m.Counts
	if sum.Documents != c.Documents || sum.Tokens != c.Tokens || sum.TrainableTokens != c.TrainableTokens || sum.Conversations != c.Conversations {
		return fmt.Errorf("counts %+v are not the sum of the shards' %+v", c, sum)
	}
	return nil
}

func validShardName(s string) bool {
	return s != "" && s == filepath.Base(s) && s != "." && s != ".."
}

// ShardName is the name of the i-th shard.
func ShardName(i int) string { return fmt.Sprintf("shard_%05d", i) }

// ReadManifest reads dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	p := filepath.Join(dir, ManifestName)
	raw, err := os.ReadFile(p)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("token cache %s: no %s, so the cache is not complete (the tokenize step has not finished): %w", dir, ManifestName, err)
		}
		return nil, fmt.Errorf("token cache %s: %w", dir, err)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("token cache %s: %w", p, err)
	}
	return m, nil
}

// ParseManifest decodes and checks manifest.json's content (see
// Manifest.Check).
func ParseManifest(raw []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// WriteManifest writes dir/manifest.json atomically; write it after every
// shard is committed. Counts are recomputed from the shards.
func WriteManifest(dir string, m *Manifest) error {
	m.Layout, m.Version, m.DTypes = Layout, Version, TheDTypes
	var sum Counts
	sum.Skipped = map[string]int64{}
	for _, s := range m.Shards {
		sum.Add(s.Counts)
	}
	m.Counts = sum
	sort.SliceStable(m.Shards, func(i, j int) bool { return m.Shards[i].Name < m.Shards[j].Name })
	if err := m.Check(); err != nil {
		return fmt.Errorf("write token cache manifest in %s: %w", dir, err)
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("write token cache manifest in %s: %w", dir, err)
	}
	return storage.WriteAtomic(context.Background(), filepath.Join(dir, ManifestName), append(raw, '\n'))
}
