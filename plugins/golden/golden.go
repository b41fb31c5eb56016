// Package golden compares test output with golden files: files under a
// package's testdata that hold the expected output of a format (a chat
// rendering, a dataset transform, an experiment's plan), reviewed in diffs.
//
//	golden.Compare(t, "testdata/golden/alpaca.golden", got)
//
// `go test ./pkg -update` rewrites the files from the current output
// instead of comparing; the diff is then reviewed like code. Only tests
// import this package (it registers the -update flag).
package golden

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output instead of comparing")

// Update reports whether the test run rewrites golden files (-update).
func Update() bool { return *update }

// Compare checks got against the golden file at path, or with -update
// writes got there (creating its directory). A difference fails t with the
// first line that differs and how to regenerate.
func Compare(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run '%s' -update to create it)", err, t.Name())
		return
	}
	if d := Diff(want, got); d != "" {
		t.Errorf("%s differs from the output; if the change is intended rerun with -update and review the diff.\n%s", path, d)
	}
}

// Diff describes the first line where want and got differ ("" when they
// are equal).
func Diff(want, got []byte) string {
	if bytes.Equal(want, got) {
		return ""
	}
	wl, gl := bytes.Split(want, []byte("\n")), bytes.Split(got, []byte("\n"))
	for i := 0; ; i++ {
		var w, g []byte
		wok, gok := i < len(wl), i < len(gl)
		if wok {
			w = wl[i]
		}
		if gok {
			g = gl[i]
		}
		if wok != gok || !bytes.Equal(w, g) {
			return fmt.Sprintf("line %d:\n  golden: %s\n  now:    %s", i+1, lineOrEnd(w, wok), lineOrEnd(g, gok))
		}
	}
}

func lineOrEnd(l []byte, ok bool) string {
	if !ok {
		return "(end of file)"
	}
	return fmt.Sprintf("%q", l)
}
