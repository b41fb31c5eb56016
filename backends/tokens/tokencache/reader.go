package tokencache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"unsafe"
)

// Cache is an open token cache. Its slices point into memory-mapped files:
// they are read-only and valid until Close. A Cache is safe for concurrent
// reads.
type Cache struct {
	dir      string
	m        *Manifest
	shards   []*Shard
	docStart []int64 // docStart[i]: global index of shard i's first document; one extra entry at the end
}

// Shard is one shard of an open cache.
type Shard struct {
	Info    ShardInfo
	ids     []uint32
	mask    []uint8
	offsets []uint64
	maps    []*mapping
}

// Open maps the complete cache in the local directory dir. It checks the
// manifest, that every file has the size the manifest records, and that the
// document offsets are consistent, so a truncated or rewritten file is
// refused with an error naming it. Verify checks checksums as well.
func Open(dir string) (*Cache, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	c := &Cache{dir: dir, m: m, docStart: []int64{0}}
	for _, info := range m.Shards {
		s, err := openShard(dir, info)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.shards = append(c.shards, s)
		c.docStart = append(c.docStart, c.docStart[len(c.docStart)-1]+int64(len(s.offsets)-1))
	}
	return c, nil
}

func openShard(dir string, info ShardInfo) (*Shard, error) {
	if err := checkSizes(info); err != nil {
		return nil, fmt.Errorf("token cache %s: shard %s: %w", dir, info.Name, err)
	}
	s := &Shard{Info: info}
	var raw [3][]byte
	for i, f := range info.Files() {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		mp, err := mapFile(p)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("token cache file %s: %w", p, err)
		}
		s.maps = append(s.maps, mp)
		if int64(len(mp.data)) != f.Bytes {
			s.close()
			return nil, fmt.Errorf("token cache file %s: %d bytes, the manifest says %d (truncated or overwritten)", p, len(mp.data), f.Bytes)
		}
		raw[i] = mp.data
	}
	s.ids = asUint32(raw[0])
	s.mask = raw[1]
	s.offsets = asUint64(raw[2])
	if err := checkOffsets(s.offsets, len(s.ids)); err != nil {
		s.close()
		return nil, fmt.Errorf("token cache file %s: %w (corrupted)", filepath.Join(dir, filepath.FromSlash(info.Offsets.Path)), err)
	}
	return s, nil
}

// checkOffsets: 0 first, never decreasing (documents may be empty), the
// last equal to the token count.
func checkOffsets(offsets []uint64, tokens int) error {
	if offsets[0] != 0 {
		return fmt.Errorf("first offset is %d, want 0", offsets[0])
	}
	for d := 1; d < len(offsets); d++ {
		if offsets[d] < offsets[d-1] {
			return fmt.Errorf("offset %d (%d) is below offset %d (%d)", d, offsets[d], d-1, offsets[d-1])
		}
	}
	if last := offsets[len(offsets)-1]; last != uint64(tokens) {
		return fmt.Errorf("last offset %d, but the shard has %d tokens", last, tokens)
	}
	return nil
}

// Verify checks every file against the sha256 in the manifest, that every
// mask value is 0 or 1 and adds up to the trainable count, and that every id
// is below the tokenizer's vocabulary size.
func (c *Cache) Verify() error {
	for _, s := range c.shards {
		if err := c.verifyShard(s); err != nil {
			return err
		}
	}
	return nil
}

// verifyShard is Verify for one shard.
func (c *Cache) verifyShard(s *Shard) error {
	for _, f := range s.Info.Files() {
		if err := verifyFile(c.dir, f); err != nil {
			return err
		}
	}
	var trainable int64
	for i, m := range s.mask {
		if m > 1 {
			return fmt.Errorf("token cache file %s: mask value %d at token %d (want 0 or 1)", filepath.Join(c.dir, s.Info.Mask.Path), m, i)
		}
		trainable += int64(m)
	}
	if trainable != s.Info.Counts.TrainableTokens {
		return fmt.Errorf("token cache shard %s: %d trainable tokens, the manifest says %d", s.Info.Name, trainable, s.Info.Counts.TrainableTokens)
	}
	if vs := c.m.Tokenizer.VocabSize; vs > 0 {
		for i, id := range s.ids {
			if int64(id) >= int64(vs) {
				return fmt.Errorf("token cache file %s: id %d at token %d is outside the vocabulary (%d)", filepath.Join(c.dir, s.Info.IDs.Path), id, i, vs)
			}
		}
	}
	return nil
}

// Close unmaps the files; slices from the cache must not be used after.
func (c *Cache) Close() error {
	var errs []error
	for _, s := range c.shards {
		errs = append(errs, s.close())
	}
	c.shards = nil
	return errors.Join(errs...)
}

func (s *Shard) close() error {
	var errs []error
	for _, m := range s.maps {
		errs = append(errs, m.close())
	}
	s.maps, s.ids, s.mask, s.offsets = nil, nil, nil, nil
	return errors.Join(errs...)
}

// Dir is the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// Manifest returns the cache's manifest.
func (c *Cache) Manifest() *Manifest { return c.m }

// NumDocs is the number of documents in the cache.
func (c *Cache) NumDocs() int64 { return c.docStart[len(c.docStart)-1] }

// NumTokens is the number of tokens in the cache.
func (c *Cache) NumTokens() int64 { return c.m.Counts.Tokens }

// TrainableTokens is the number of tokens with mask 1.
func (c *Cache) TrainableTokens() int64 { return c.m.Counts.TrainableTokens }

// IsValidation reports whether the cache was made as a validation set.
func (c *Cache) IsValidation() bool { return c.m.IsValidation }

// Shards returns the shards in order.
func (c *Cache) Shards() []*Shard { return c.shards }

// locate finds the shard holding global document i.
func (c *Cache) locate(i int64) (*Shard, int) {
	if i < 0 || i >= c.NumDocs() {
		panic(fmt.Sprintf("tokencache: document %d out of range [0, %d)", i, c.NumDocs()))
	}
	k := sort.Search(len(c.shards), func(k int) bool { return c.docStart[k+1] > i })
	return c.shards[k], int(i - c.docStart[k])
}

// Doc returns document i's ids and mask (0 ≤ i < NumDocs), slices into the
// mapped files.
func (c *Cache) Doc(i int64) (ids []uint32, mask []uint8) {
	s, d := c.locate(i)
	return s.Doc(d)
}

// DocLen is the number of tokens of document i.
func (c *Cache) DocLen(i int64) int {
	s, d := c.locate(i)
	return s.DocLen(d)
}

// NumDocs is the number of documents in the shard.
func (s *Shard) NumDocs() int { return len(s.offsets) - 1 }

// Doc returns the shard's document d.
func (s *Shard) Doc(d int) (ids []uint32, mask []uint8) {
	a, b := s.offsets[d], s.offsets[d+1]
	return s.ids[a:b:b], s.mask[a:b:b]
}

// DocLen is the number of tokens of the shard's document d.
func (s *Shard) DocLen(d int) int { return int(s.offsets[d+1] - s.offsets[d]) }

// IDs, Mask and Offsets are the shard's whole arrays.
func (s *Shard) IDs() []uint32     { return s.ids }
func (s *Shard) Mask() []uint8     { return s.mask }
func (s *Shard) Offsets() []uint64 { return s.offsets }

// littleEndian: the arrays are little-endian; on such a host they are used
// in place, elsewhere decoded into memory.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func asUint32(b []byte) []uint32 {
	if len(b) == 0 {
		return nil
	}
	if littleEndian && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
		return unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), len(b)/4)
	}
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

func asUint64(b []byte) []uint64 {
	if littleEndian && len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%8 == 0 {
		return unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), len(b)/8)
	}
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out
}

// mapping is a mapped (or, where mmap is unavailable, read) file.
type mapping struct {
	data  []byte
	unmap func() error
}

func (m *mapping) close() error {
	if m.unmap == nil {
		return nil
	}
	err := m.unmap()
	m.unmap, m.data = nil, nil
	return err
}

// openForMap stats a file for mapping.
func openForMap(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("not a regular file")
	}
	return f, fi.Size(), nil
}
