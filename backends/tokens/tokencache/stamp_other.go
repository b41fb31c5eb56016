//go:build !linux

package tokencache

import "os"

// fileStamp is what changes when a file's bytes do: here, its modification
// time.
func fileStamp(fi os.FileInfo) string { return fi.ModTime().UTC().String() }
