package optim

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
)

// stateMagic opens a serialised State; the version follows it.
const (
	stateMagic   = "MARIN-ADAMW\x00"
	stateVersion = 1
	maxNameLen   = 1 << 12
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteTo writes the state in a little-endian binary layout: magic, version,
// step, tensor count, then per tensor its name, length, first and second
// moments as float32, and finally a CRC-32C of everything before it.
func (s *State) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w, crc: crc32.New(castagnoli)}
	bw := bufio.NewWriterSize(cw, 1<<16)
	var hdr [8]byte
	put32 := func(v uint32) error {
		binary.LittleEndian.PutUint32(hdr[:4], v)
		_, err := bw.Write(hdr[:4])
		return err
	}
	put64 := func(v uint64) error {
		binary.LittleEndian.PutUint64(hdr[:], v)
		_, err := bw.Write(hdr[:])
		return err
	}
	if _, err := bw.WriteString(stateMagic); err != nil {
		return cw.n, fmt.Errorf("write optimizer state: %w", err)
	}
	if err := put32(stateVersion); err != nil {
		return cw.n, fmt.Errorf("write optimizer state: %w", err)
	}
	if err := put64(uint64(s.Step)); err != nil {
		return cw.n, fmt.Errorf("write optimizer state: %w", err)
	}
	if err := put32(uint32(len(s.Names))); err != nil {
		return cw.n, fmt.Errorf("write optimizer state: %w", err)
	}
	buf := make([]byte, 4*ioChunk)
	writeFloats := func(x []float32) error {
		for lo := 0; lo < len(x); lo += ioChunk {
			part := x[lo:min(lo+ioChunk, len(x))]
			for i, v := range part {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
			if _, err := bw.Write(buf[:4*len(part)]); err != nil {
				return err
			}
		}
		return nil
	}
	for i, name := range s.Names {
		if len(s.M[i]) != len(s.V[i]) {
			return cw.n, fmt.Errorf("write optimizer state: %q has %d first and %d second moments", name, len(s.M[i]), len(s.V[i]))
		}
		if err := put32(uint32(len(name))); err != nil {
			return cw.n, fmt.Errorf("write optimizer state: %w", err)
		}
		if _, err := bw.WriteString(name); err != nil {
			return cw.n, fmt.Errorf("write optimizer state: %w", err)
		}
		if err := put64(uint64(len(s.M[i]))); err != nil {
			return cw.n, fmt.Errorf("write optimizer state: %w", err)
		}
		if err := writeFloats(s.M[i]); err != nil {
			return cw.n, fmt.Errorf("write optimizer state %q: %w", name, err)
		}
		if err := writeFloats(s.V[i]); err != nil {
			return cw.n, fmt.Errorf("write optimizer state %q: %w", name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write optimizer state: %w", err)
	}
	binary.LittleEndian.PutUint32(hdr[:4], cw.crc.Sum32())
	if _, err := w.Write(hdr[:4]); err != nil {
		return cw.n, fmt.Errorf("write optimizer state checksum: %w", err)
	}
	return cw.n + 4, nil
}

type countWriter struct {
	w   io.Writer
	crc hash.Hash32
	n   int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// ReadState reads a state written by WriteTo, refusing a wrong magic or
// version, a truncated stream and a checksum mismatch.
func ReadState(r io.Reader) (*State, error) {
	crc := crc32.New(castagnoli)
	br := bufio.NewReaderSize(r, 1<<16)
	tr := io.TeeReader(br, crc)
	fail := func(what string, err error) (*State, error) {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read optimizer state: %s: truncated: %w", what, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("read optimizer state: %s: %w", what, err)
	}
	magic := make([]byte, len(stateMagic))
	if _, err := io.ReadFull(tr, magic); err != nil {
		return fail("header", err)
	}
	if string(magic) != stateMagic {
		return nil, fmt.Errorf("read optimizer state: not an optimizer state (bad magic %q)", magic)
	}
	var hdr [8]byte
	get32 := func() (uint32, error) {
		_, err := io.ReadFull(tr, hdr[:4])
		return binary.LittleEndian.Uint32(hdr[:4]), err
	}
	get64 := func() (uint64, error) {
		_, err := io.ReadFull(tr, hdr[:])
		return binary.LittleEndian.Uint64(hdr[:]), err
	}
	ver, err := get32()
	if err != nil {
		return fail("header", err)
	}
	if ver != stateVersion {
		return nil, fmt.Errorf("read optimizer state: version %d, this build reads %d", ver, stateVersion)
	}
	step, err := get64()
	if err != nil {
		return fail("header", err)
	}
	count, err := get32()
	if err != nil {
		return fail("header", err)
	}
	s := &State{Step: int64(step)}
	buf := make([]byte, 4*ioChunk)
	readFloats := func(x []float32) error {
		for lo := 0; lo < len(x); lo += ioChunk {
			part := x[lo:min(lo+ioChunk, len(x))]
			if _, err := io.ReadFull(tr, buf[:4*len(part)]); err != nil {
				return err
			}
			for i := range part {
				part[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
			}
		}
		return nil
	}
	for i := uint32(0); i < count; i++ {
		nl, err := get32()
		if err != nil {
			return fail(fmt.Sprintf("tensor %d", i), err)
		}
		if nl > maxNameLen {
			return nil, fmt.Errorf("read optimizer state: tensor %d: name length %d is implausible (corrupt file?)", i, nl)
		}
		name := make([]byte, nl)
		if _, err := io.ReadFull(tr, name); err != nil {
			return fail(fmt.Sprintf("tensor %d", i), err)
		}
		n, err := get64()
		if err != nil {
			return fail(string(name), err)
		}
		if n > 1<<40 {
			return nil, fmt.Errorf("read optimizer state: %q: length %d is implausible (corrupt file?)", name, n)
		}
		// Allocate as the data arrives so that a corrupt length fails as a
		// truncation rather than a huge allocation.
		m, err := readGrowing(readFloats, int(n))
		if err != nil {
			return fail(string(name), err)
		}
		v, err := readGrowing(readFloats, int(n))
		if err != nil {
			return fail(string(name), err)
		}
		s.Names = append(s.Names, string(name))
		s.M = append(s.M, m)
		s.V = append(s.V, v)
	}
	want := crc.Sum32()
	if _, err := io.ReadFull(br, hdr[:4]); err != nil {
		return fail("checksum", err)
	}
	if got := binary.LittleEndian.Uint32(hdr[:4]); got != want {
		return nil, fmt.Errorf("read optimizer state: checksum mismatch (stored %08x, computed %08x): the file is corrupt", got, want)
	}
	return s, nil
}

func readGrowing(readFloats func([]float32) error, n int) ([]float32, error) {
	out := make([]float32, 0, min(n, 1<<20))
	for len(out) < n {
		k := min(n-len(out), max(len(out), 1<<20))
		part := make([]float32, k)
		if err := readFloats(part); err != nil {
			return nil, err
		}
		out = append(out, part...)
	}
	return out, nil
}

// ioChunk is how many floats state I/O converts at a time.
const ioChunk = 1 << 16
