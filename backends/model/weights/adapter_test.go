package weights

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/model/lora"
)

// writeLoRAStep lays out a LoRA step's output the way the train op does:
// base under root/base/hf/step-1, the adapter under root/run/adapter/step-2
// with marin.json naming the base relatively, and a LoRA checkpoint.
func writeLoRAStep(t *testing.T, root string) (baseDir, run string, a *lora.Adapter) {
	t.Helper()
	base, err := Init(tinyConfig(), 3)
	if err != nil {
		t.Fatal(err)
	}
	baseDir = filepath.Join(root, "base", "hf", "step-1")
	if err := ExportHF(baseDir, base, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	a, err = lora.New(lora.Spec{R: 2, Alpha: 4, Targets: lora.Targets{Pattern: lora.AllLinear}}, base.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Init(base, 1); err != nil {
		t.Fatal(err)
	}
	for i := range a.Flat() {
		a.Flat()[i] += float32(i%3) * 0.01
	}
	run = filepath.Join(root, "run")
	ad := filepath.Join(run, "adapter", "step-2")
	abs, _ := filepath.Abs(baseDir)
	bm, rev, rel := BaseRef(baseDir, baseDir, ad)
	if bm != abs || rev != "" || rel != "../../../base/hf/step-1" {
		t.Fatalf("BaseRef: %q %q %q", bm, rev, rel)
	}
	a.Spec.BaseModel = bm
	mi, _ := json.Marshal(MarinInfo{Step: 2, BaseModel: rel})
	if err := ExportAdapter(ad, a, ExportOptions{Extra: map[string][]byte{MarinInfoName: mi}}); err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(run, "checkpoints", "step-2")
	if err := os.MkdirAll(ck, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := lora.WriteFiles(ck, a, ""); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ck, "metadata.json"), []byte(`{"step": 2}`), 0o644)
	return baseDir, run, a
}

func TestAdapterDirectories(t *testing.T) {
	root := t.TempDir()
	baseDir, run, a := writeLoRAStep(t, root)
	ad := filepath.Join(run, "adapter", "step-2")
	if d, err := FindModelDir(run); err != nil || d != ad {
		t.Errorf("FindModelDir(LoRA step) = %s, %v; want its adapter export", d, err)
	}
	if d, ok := FindAdapterDir(run); !ok || d != ad {
		t.Errorf("FindAdapterDir(LoRA step) = %s, %v", d, ok)
	}
	os.RemoveAll(filepath.Join(run, "adapter"))
	if d, ok := FindAdapterDir(run); !ok || d != filepath.Join(run, "checkpoints", "step-2") {
		t.Errorf("FindAdapterDir without exports = %s, %v; want the checkpoint", d, ok)
	}
	if _, ok := FindAdapterDir(filepath.Join(root, "base")); ok {
		t.Error("FindAdapterDir found an adapter in a full model's step")
	}
	_, run, _ = writeLoRAStep(t, root)

	// Loading the adapter gives the base with it merged; LoadDir too.
	base, _, err := LoadDir(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := a.Merge(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, load := range []func() (string, error){
		func() (string, error) {
			p, info, err := Load(context.Background(), run, nil)
			if err == nil && !reflect.DeepEqual(flat(p), flat(want)) {
				return "Load", os.ErrInvalid
			}
			return "Load " + info.Base, err
		},
		func() (string, error) {
			p, _, err := LoadDir(ad)
			if err == nil && !reflect.DeepEqual(flat(p), flat(want)) {
				return "LoadDir", os.ErrInvalid
			}
			return "LoadDir", err
		},
	} {
		if what, err := load(); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}

	// Moving the whole prefix: marin.json's relative base still finds it,
	// although adapter_config.json's absolute path is gone.
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(root, moved); err != nil {
		t.Fatal(err)
	}
	p, info, err := Load(context.Background(), filepath.Join(moved, "run"), nil)
	if err != nil {
		t.Fatalf("after moving the prefix: %v", err)
	}
	if !strings.HasPrefix(info.Base, moved) || !reflect.DeepEqual(flat(p), flat(want)) {
		t.Errorf("after moving the prefix the base came from %s", info.Base)
	}
	// Without marin.json the absolute path is all there is: a clear error.
	os.Remove(filepath.Join(moved, "run", "adapter", "step-2", MarinInfoName))
	if _, _, err := Load(context.Background(), filepath.Join(moved, "run", "adapter", "step-2"), nil); err == nil || !strings.Contains(err.Error(), "its base model") {
		t.Errorf("an adapter whose base is gone: %v", err)
	}
}

func TestFingerprint(t *testing.T) {
	root := t.TempDir()
	baseDir, _, _ := writeLoRAStep(t, root)
	f1, err := Fingerprint(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy")
	os.MkdirAll(cp, 0o755)
	for _, n := range []string{ConfigName, "model.safetensors"} {
		b, _ := os.ReadFile(filepath.Join(baseDir, n))
		os.WriteFile(filepath.Join(cp, n), b, 0o644)
	}
	if f2, err := Fingerprint(cp); err != nil || f2 != f1 {
		t.Errorf("a copy's fingerprint %s (%v), the original's %s", f2, err, f1)
	}
	p, _, _ := LoadDir(baseDir)
	p.Norm.Data[0] += 0.5
	if err := ExportHF(cp, p, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if f3, _ := Fingerprint(cp); f3 == f1 {
		t.Error("changed weights kept their fingerprint")
	}
	if _, err := Fingerprint(t.TempDir()); err == nil {
		t.Error("an empty directory has a fingerprint")
	}
}

func TestAdapterBaseHubRevision(t *testing.T) {
	dir := t.TempDir()
	got, err := AdapterBase(dir, lora.Spec{BaseModel: "meta-llama/Llama-3.1-8B", Revision: "0e9e39f"})
	if err != nil || got != "meta-llama/Llama-3.1-8B@0e9e39f" {
		t.Errorf("AdapterBase = %q, %v", got, err)
	}
	if _, err := AdapterBase(dir, lora.Spec{}); err == nil {
		t.Error("an adapter naming no base was accepted")
	}
	if bm, rev, rel := BaseRef("org/name@abc", "/cache/x", dir); bm != "org/name" || rev != "abc" || rel != "" {
		t.Errorf("BaseRef of a hub id: %q %q %q", bm, rev, rel)
	}
}
