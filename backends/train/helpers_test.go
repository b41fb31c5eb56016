package train_test

import (
	"testing"

	"github.com/marin-go/marin/backends/train"
	"github.com/marin-go/marin/backends/train/traintest"
)

const testVocab = traintest.Vocab

// writeCache writes a synthetic token cache (see traintest.WriteCache).
func writeCache(t testing.TB, dir string, seed uint64, n int, validation bool) string {
	return traintest.WriteCache(t, dir, seed, n, validation)
}

// testConfig is a small from-scratch run over two weighted components and
// one validation component.
func testConfig(t testing.TB, root string, steps int64) *train.Config {
	t.Helper()
	js := traintest.Config(t, root, steps)
	cfg, err := train.ParseConfig(js)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
