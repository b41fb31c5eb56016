package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeT records failures instead of stopping the test.
type fakeT struct {
	testing.TB
	failed []string
}

func (f *fakeT) Helper()                           {}
func (f *fakeT) Name() string                      { return "TestX" }
func (f *fakeT) Errorf(format string, args ...any) { f.failed = append(f.failed, format) }
func (f *fakeT) Fatalf(format string, args ...any) { f.failed = append(f.failed, format) }
func (f *fakeT) Fatal(args ...any)                 { f.failed = append(f.failed, "fatal") }

func TestCompareAndUpdate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.golden")
	ft := &fakeT{TB: t}
	Compare(ft, path, []byte("a\nb\n"))
	if len(ft.failed) != 1 {
		t.Fatalf("a missing golden file passed: %v", ft.failed)
	}
	*update = true
	Compare(ft, path, []byte("a\nb\n"))
	*update = false
	if b, err := os.ReadFile(path); err != nil || string(b) != "a\nb\n" {
		t.Fatalf("-update wrote %q, %v", b, err)
	}
	ft.failed = nil
	Compare(ft, path, []byte("a\nb\n"))
	if len(ft.failed) != 0 {
		t.Errorf("equal output failed: %v", ft.failed)
	}
	Compare(ft, path, []byte("a\nc\n"))
	if len(ft.failed) != 1 {
		t.Errorf("different output passed")
	}
}

func TestDiffNamesTheFirstDifferentLine(t *testing.T) {
	if d := Diff([]byte("x\ny"), []byte("x\ny")); d != "" {
		t.Errorf("equal: %q", d)
	}
	if d := Diff([]byte("x\ny\nz"), []byte("x\nY\nz")); !strings.HasPrefix(d, "line 2:") || !strings.Contains(d, `"y"`) || !strings.Contains(d, `"Y"`) {
		t.Errorf("changed line: %q", d)
	}
	if d := Diff([]byte("x"), []byte("x\nmore")); !strings.Contains(d, "line 2") || !strings.Contains(d, "(end of file)") {
		t.Errorf("longer output: %q", d)
	}
}
