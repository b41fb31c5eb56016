// Package safetensors reads and writes Hugging Face safetensors files: an
// 8-byte little-endian header length, a JSON header mapping tensor names to
// dtype, shape and byte range, then the raw little-endian tensor data. It
// also reads and writes the sharded layout (model-00001-of-00002.safetensors
// plus model.safetensors.index.json) that transformers uses for big models.
//
// Tensors are exposed as float32: F32 is copied, BF16 and F16 are widened,
// F64 is narrowed. Writing supports F32 and BF16. Every structural problem in
// a file (truncation, overlapping or out-of-range offsets, a size that does
// not match the shape) is an error naming the file and the tensor, so a
// corrupt checkpoint is refused rather than loaded as garbage.
package safetensors

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/marin-go/marin/plugins/storage"
)

// DType is a safetensors element type name.
type DType string

// The element types this package understands.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
	I64  DType = "I64"
	I32  DType = "I32"
)

// Size is the byte width of one element.
func (d DType) Size() int {
	switch d {
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case F64, I64:
		return 8
	}
	return 0
}

// maxHeader bounds the JSON header (the format's own limit is 100 MB).
const maxHeader = 100 << 20

// TensorInfo describes one tensor in a file.
type TensorInfo struct {
	Name        string
	DType       DType    `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// NumElements is the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is an opened safetensors file: its validated header, and its data
// either in memory (Parse) or read from Path as tensors are asked for
// (Open), so opening a file allocates only its header.
type File struct {
	Path     string
	Metadata map[string]string
	Tensors  map[string]TensorInfo
	data     []byte // the bytes after the header, when held in memory
	dataOff  int64  // where the data starts in Path, when read from disk
}

// Open reads and validates a safetensors file's header; tensor data is
// read when asked for. Nothing is allocated beyond the header, whose length
// is checked against the file's size first.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("read safetensors: %w", err)
	}
	f, err := readHeader(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	f.Path = path
	return f, nil
}

// readHeader reads and validates the header of a size-byte file.
func readHeader(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, fmt.Errorf("file is %d bytes, shorter than the 8-byte header length: truncated", size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("read header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeader {
		return nil, fmt.Errorf("header length %d exceeds the %d-byte limit: not a safetensors file or corrupt", n, maxHeader)
	}
	if uint64(size-8) < n {
		return nil, fmt.Errorf("header length %d but only %d bytes follow: truncated", n, size-8)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	f := &File{dataOff: 8 + int64(n)}
	if err := f.parseHeader(hdr, size-8-int64(n)); err != nil {
		return nil, err
	}
	return f, nil
}

// Parse validates a whole safetensors file held in memory.
func Parse(b []byte) (*File, error) {
	f, err := readHeader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	f.data = b[f.dataOff:]
	return f, nil
}

// parseHeader fills f's tensors and metadata from the header JSON, checking
// every tensor against the dataLen bytes that follow it.
func (f *File) parseHeader(hdr []byte, dataLen int64) error {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("header JSON: %w", err)
	}
	f.Tensors = map[string]TensorInfo{}
	type span struct {
		name       string
		start, end int64
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return fmt.Errorf("header __metadata__ must map strings to strings: %w", err)
			}
			continue
		}
		var ti TensorInfo
		if err := json.Unmarshal(msg, &ti); err != nil {
			return fmt.Errorf("tensor %q: %w", name, err)
		}
		ti.Name = name
		if ti.DType.Size() == 0 {
			return fmt.Errorf("tensor %q: unsupported dtype %q", name, ti.DType)
		}
		start, end := ti.DataOffsets[0], ti.DataOffsets[1]
		if start < 0 || end < start || end > dataLen {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] outside the %d data bytes: truncated or corrupt", name, start, end, dataLen)
		}
		// Multiply with a bound so absurd shapes cannot overflow.
		elems := int64(1)
		for _, d := range ti.Shape {
			if d < 0 {
				return fmt.Errorf("tensor %q: negative dimension in shape %v", name, ti.Shape)
			}
			if d != 0 && elems > (end-start+1)/d {
				elems = end - start + 1 // more elements than bytes: reported below
				break
			}
			elems *= d
		}
		if elems > (end-start) || elems*int64(ti.DType.Size()) != end-start {
			return fmt.Errorf("tensor %q: shape %v of %s needs %d bytes, data_offsets give %d", name, ti.Shape, ti.DType, elems*int64(ti.DType.Size()), end-start)
		}
		f.Tensors[name] = ti
		spans = append(spans, span{name, start, end})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return fmt.Errorf("tensors %q and %q overlap", spans[i-1].name, spans[i].name)
		}
	}
	return nil
}

// Names lists the tensors in a stable order.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Float32 returns a tensor's values converted to float32.
func (f *File) Float32(name string) ([]float32, []int64, error) {
	ti, ok := f.Tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("safetensors %s: no tensor %q", f.Path, name)
	}
	if !ti.DType.IsFloat() {
		return nil, nil, fmt.Errorf("safetensors %s: tensor %q has dtype %s, not a float type", f.Path, name, ti.DType)
	}
	out := make([]float32, ti.NumElements())
	if err := f.Float32Into(name, out); err != nil {
		return nil, nil, err
	}
	return out, append([]int64(nil), ti.Shape...), nil
}

// IsFloat reports whether the dtype converts to float32.
func (d DType) IsFloat() bool { return d == F32 || d == BF16 || d == F16 || d == F64 }

// Float32Into converts a tensor's values into dst, which must hold exactly
// its elements; a file opened from disk is read a chunk at a time, so no
// buffer beyond dst is as large as the tensor.
func (f *File) Float32Into(name string, dst []float32) error {
	ti, ok := f.Tensors[name]
	if !ok {
		return fmt.Errorf("safetensors %s: no tensor %q", f.Path, name)
	}
	if !ti.DType.IsFloat() {
		return fmt.Errorf("safetensors %s: tensor %q has dtype %s, not a float type", f.Path, name, ti.DType)
	}
	if int64(len(dst)) != ti.NumElements() {
		return fmt.Errorf("safetensors %s: tensor %q has %d elements, the destination %d", f.Path, name, ti.NumElements(), len(dst))
	}
	if f.data != nil {
		convert(dst, f.data[ti.DataOffsets[0]:ti.DataOffsets[1]], ti.DType)
		return nil
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return fmt.Errorf("safetensors %s: tensor %q: %w", f.Path, name, err)
	}
	defer fh.Close()
	size := int64(ti.DType.Size())
	const chunk = 1 << 20
	buf := make([]byte, min(chunk, ti.DataOffsets[1]-ti.DataOffsets[0]))
	done := int64(0) // elements converted
	for off := ti.DataOffsets[0]; off < ti.DataOffsets[1]; {
		n := min(int64(len(buf)), ti.DataOffsets[1]-off)
		if _, err := fh.ReadAt(buf[:n], f.dataOff+off); err != nil {
			return fmt.Errorf("safetensors %s: tensor %q: %w (truncated since it was opened?)", f.Path, name, err)
		}
		convert(dst[done:done+n/size], buf[:n], ti.DType)
		done += n / size
		off += n
	}
	return nil
}

// convert widens or narrows raw little-endian values of dtype into dst.
func convert(dst []float32, raw []byte, dtype DType) {
	switch dtype {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	}
}

// F16ToF32 widens an IEEE half-precision value.
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: normalise.
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// F32ToBF16 rounds to bfloat16 (round to nearest even; NaN stays NaN).
func F32ToBF16(v float32) uint16 {
	b := math.Float32bits(v)
	if v != v {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// Tensor is a named float32 tensor to write.
type Tensor struct {
	Name  string
	Shape []int64
	Data  []float32
}

// Write writes tensors to path atomically (plugins/storage.Writer: the file
// appears complete or not at all) in dtype F32 or BF16, with optional
// string metadata.
func Write(path string, tensors []Tensor, dtype DType, metadata map[string]string) error {
	if dtype != F32 && dtype != BF16 {
		return fmt.Errorf("write %s: dtype %s not supported (F32 or BF16)", path, dtype)
	}
	err := storage.WriteAtomicFunc(context.Background(), path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := encode(bw, tensors, dtype, metadata); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func encode(w io.Writer, tensors []Tensor, dtype DType, metadata map[string]string) error {
	sorted := append([]Tensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	hdr := map[string]any{}
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var off int64
	seen := map[string]bool{}
	for _, t := range sorted {
		if seen[t.Name] || t.Name == "__metadata__" || t.Name == "" {
			return fmt.Errorf("tensor name %q is empty, reserved or repeated", t.Name)
		}
		seen[t.Name] = true
		n := int64(1)
		for _, d := range t.Shape {
			n *= d
		}
		if n != int64(len(t.Data)) {
			return fmt.Errorf("tensor %q: shape %v has %d elements, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		size := n * int64(dtype.Size())
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		hdr[t.Name] = map[string]any{"dtype": dtype, "shape": shape, "data_offsets": [2]int64{off, off + size}}
		off += size
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	// Pad the header with spaces so the data starts 8-byte aligned.
	if pad := (8 - len(js)%8) % 8; pad > 0 {
		js = append(js, bytes.Repeat([]byte(" "), pad)...)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(js); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	for _, t := range sorted {
		for _, v := range t.Data {
			if dtype == F32 {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			} else {
				buf = binary.LittleEndian.AppendUint16(buf, F32ToBF16(v))
			}
			if len(buf) >= 1<<16-8 {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err = w.Write(buf)
	return err
}

// IndexName is the index file of a sharded checkpoint.
const IndexName = "model.safetensors.index.json"

// Index is model.safetensors.index.json.
type Index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// Model is the tensors of a model directory, single-file or sharded.
type Model struct {
	files  map[string]*File // shard file name -> file
	where  map[string]string
	Dir    string
	DTypes map[DType]int // how many tensors of each dtype
}

// OpenModel opens model.safetensors or the shards named by the index in dir.
func OpenModel(dir string) (*Model, error) {
	m := &Model{files: map[string]*File{}, where: map[string]string{}, Dir: dir, DTypes: map[DType]int{}}
	idxPath := filepath.Join(dir, IndexName)
	if b, err := storage.ReadAllLimit(context.Background(), idxPath, maxIndex); err == nil {
		var idx Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("read %s: %w", idxPath, err)
		}
		if len(idx.WeightMap) == 0 {
			return nil, fmt.Errorf("read %s: weight_map is empty", idxPath)
		}
		for name, shard := range idx.WeightMap {
			if strings.Contains(shard, "/") || strings.Contains(shard, "\\") {
				return nil, fmt.Errorf("read %s: shard %q of tensor %q must be a file name in the same directory", idxPath, shard, name)
			}
			f, ok := m.files[shard]
			if !ok {
				f, err = Open(filepath.Join(dir, shard))
				if err != nil {
					return nil, err
				}
				m.files[shard] = f
			}
			if _, ok := f.Tensors[name]; !ok {
				return nil, fmt.Errorf("read %s: tensor %q is mapped to %s, which does not hold it", idxPath, name, shard)
			}
			m.where[name] = shard
			m.DTypes[f.Tensors[name].DType]++
		}
		return m, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", idxPath, err)
	}
	single := filepath.Join(dir, "model.safetensors")
	f, err := Open(single)
	if err != nil {
		return nil, err
	}
	m.files["model.safetensors"] = f
	for name, ti := range f.Tensors {
		m.where[name] = "model.safetensors"
		m.DTypes[ti.DType]++
	}
	return m, nil
}

// Names lists the model's tensors in a stable order.
func (m *Model) Names() []string {
	names := make([]string, 0, len(m.where))
	for n := range m.where {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Info describes a tensor.
func (m *Model) Info(name string) (TensorInfo, bool) {
	shard, ok := m.where[name]
	if !ok {
		return TensorInfo{}, false
	}
	return m.files[shard].Tensors[name], true
}

// Float32 returns a tensor of the model as float32.
func (m *Model) Float32(name string) ([]float32, []int64, error) {
	shard, ok := m.where[name]
	if !ok {
		return nil, nil, fmt.Errorf("model %s: no tensor %q", m.Dir, name)
	}
	return m.files[shard].Float32(name)
}

// Float32Into converts a tensor of the model into dst (see File.Float32Into).
func (m *Model) Float32Into(name string, dst []float32) error {
	shard, ok := m.where[name]
	if !ok {
		return fmt.Errorf("model %s: no tensor %q", m.Dir, name)
	}
	return m.files[shard].Float32Into(name, dst)
}

// maxIndex bounds model.safetensors.index.json (a 400B-parameter model's is
// well under 1 MiB).
const maxIndex = 64 << 20

// WriteModel writes tensors into dir as model.safetensors, or as shards of
// at most maxShardBytes with an index when they do not fit in one (transformers
// shards above 10 GB by default; 0 means never shard).
func WriteModel(dir string, tensors []Tensor, dtype DType, maxShardBytes int64, metadata map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write model %s: %w", dir, err)
	}
	sorted := append([]Tensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var shards [][]Tensor
	var cur []Tensor
	var curBytes, total int64
	for _, t := range sorted {
		size := int64(len(t.Data)) * int64(dtype.Size())
		total += size
		if maxShardBytes > 0 && len(cur) > 0 && curBytes+size > maxShardBytes {
			shards = append(shards, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, t)
		curBytes += size
	}
	shards = append(shards, cur)
	if len(shards) == 1 {
		return Write(filepath.Join(dir, "model.safetensors"), sorted, dtype, metadata)
	}
	idx := Index{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
	for i, sh := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		if err := Write(filepath.Join(dir, name), sh, dtype, metadata); err != nil {
			return err
		}
		for _, t := range sh {
			idx.WeightMap[t.Name] = name
		}
	}
	js, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	if err := storage.WriteAtomic(context.Background(), filepath.Join(dir, IndexName), append(js, '\n')); err != nil {
		return fmt.Errorf("write %s: %w", IndexName, err)
	}
	return nil
}
