//go:build !unix

package storage

import (
	"errors"
	"os"
)

// lockFile: conditional replacement of local files needs flock(2).
func lockFile(*os.File) error {
	return errors.New("file locking is not supported on this system")
}
