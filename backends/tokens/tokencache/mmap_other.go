//go:build !unix

package tokencache

import (
	"fmt"
	"io"
)

// mapFile reads the file into memory where mmap is not available.
func mapFile(path string) (*mapping, error) {
	f, size, err := openForMap(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return &mapping{data: data, unmap: func() error { return nil }}, nil
}
