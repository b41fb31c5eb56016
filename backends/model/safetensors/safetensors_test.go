package safetensors

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGoldenBytes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.safetensors")
	if err := Write(p, []Tensor{{Name: "b", Shape: []int64{2}, Data: []float32{1, -2}}, {Name: "a", Shape: []int64{}, Data: []float32{0.5}}}, F32, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	hdr := `{"a":{"data_offsets":[0,4],"dtype":"F32","shape":[]},"b":{"data_offsets":[4,12],"dtype":"F32","shape":[2]}}`
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	if n := binary.LittleEndian.Uint64(b); n != uint64(len(hdr)) || string(b[8:8+n]) != hdr {
		t.Fatalf("header %q", b[8:])
	}
	data := b[8+len(hdr):]
	want := []float32{0.5, 1, -2}
	for i, w := range want {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])); got != w {
			t.Errorf("value %d = %v, want %v", i, got, w)
		}
	}
}

func TestRoundTripF32AndBF16(t *testing.T) {
	dir := t.TempDir()
	vals := []float32{0, 1, -1, 3.14159, 1e-3, -65504, 1.5e30}
	for _, dt := range []DType{F32, BF16} {
		p := filepath.Join(dir, string(dt)+".safetensors")
		if err := Write(p, []Tensor{{Name: "w", Shape: []int64{7, 1}, Data: vals}}, dt, map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
		f, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got, shape, err := f.Float32("w")
		if err != nil || len(shape) != 2 || shape[0] != 7 || f.Metadata["format"] != "pt" {
			t.Fatalf("%s: %v %v %v", dt, err, shape, f.Metadata)
		}
		for i := range vals {
			tol := float32(0)
			if dt == BF16 {
				tol = float32(math.Abs(float64(vals[i]))) / 128
			}
			if d := got[i] - vals[i]; d > tol || d < -tol {
				t.Errorf("%s[%d] = %v, want %v", dt, i, got[i], vals[i])
			}
		}
	}
}

func TestF16(t *testing.T) {
	for h, want := range map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x7bff: 65504, 0x0001: 5.9604645e-08, 0x0000: 0, 0x3555: 0.33325195} {
		if got := F16ToF32(h); got != want {
			t.Errorf("F16ToF32(%#x) = %v, want %v", h, got, want)
		}
	}
	if !math.IsInf(float64(F16ToF32(0x7c00)), 1) || !math.IsNaN(float64(F16ToF32(0x7e00))) {
		t.Error("inf/nan")
	}
}

func TestShardedModel(t *testing.T) {
	dir := t.TempDir()
	var ts []Tensor
	for _, n := range []string{"a", "b", "c", "d"} {
		ts = append(ts, Tensor{Name: n, Shape: []int64{4}, Data: []float32{1, 2, 3, float32(len(n))}})
	}
	if err := WriteModel(dir, ts, F32, 40, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, IndexName)); err != nil {
		t.Fatal("no index for a sharded model")
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "model-*-of-00002.safetensors"))
	if len(shards) != 2 {
		t.Fatalf("shards %v", shards)
	}
	m, err := OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(m.Names(), ",") != "a,b,c,d" {
		t.Errorf("names %v", m.Names())
	}
	v, _, err := m.Float32("d")
	if err != nil || v[2] != 3 {
		t.Errorf("d = %v %v", v, err)
	}
	single := t.TempDir()
	if err := WriteModel(single, ts, BF16, 0, nil); err != nil {
		t.Fatal(err)
	}
	if m, err := OpenModel(single); err != nil || m.DTypes[BF16] != 4 {
		t.Errorf("single-file model: %v %v", err, m)
	}
}

func header(h string, data int) []byte {
	b := make([]byte, 8, 8+len(h)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(h)))
	b = append(b, h...)
	return append(b, make([]byte, data)...)
}

func TestCorruptFilesRefused(t *testing.T) {
	good := header(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8)
	if _, err := Parse(good); err != nil {
		t.Fatalf("good file refused: %v", err)
	}
	cases := map[string][]byte{
		"truncated":      good[:len(good)-3],
		"shorter than":   good[:5],
		"only":           good[:20],
		"needs 12 bytes": header(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8),
		"overlap":        header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8),
		"unsupported":    header(`{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}`, 8),
		"header JSON":    header(`{"w":`, 8),
		"negative":       header(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 8),
		"exceeds":        append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}, good[8:]...),
		"huge shape":     header(`{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}`, 8),
	}
	for want, b := range cases {
		_, err := Parse(b)
		if err == nil {
			t.Errorf("%s: accepted", want)
			continue
		}
		if want != "huge shape" && !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q", want, err)
		}
	}
	p := filepath.Join(t.TempDir(), "bad.safetensors")
	os.WriteFile(p, good[:len(good)-3], 0o644)
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("error does not name the file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(header(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8))
	f.Add(header(`{"__metadata__":{"a":"b"},"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}`, 8))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			return
		}
		for _, n := range file.Names() {
			if ti := file.Tensors[n]; ti.DType == I32 || ti.DType == I64 {
				continue
			}
			if _, _, err := file.Float32(n); err != nil {
				t.Fatalf("valid tensor %q unreadable: %v", n, err)
			}
		}
	})
}
