//go:build unix

package tokencache

import (
	"fmt"
	"syscall"
)

// mapFile maps a file read-only. An empty file maps to no memory.
func mapFile(path string) (*mapping, error) {
	f, size, err := openForMap(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size == 0 {
		return &mapping{}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%d bytes is too large to map on this platform", size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	return &mapping{data: data, unmap: func() error { return syscall.Munmap(data) }}, nil
}
