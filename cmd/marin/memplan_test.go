package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exp606's dry run prints the memory plan of its 8B step (the model's
// config shipped with marin, no network): the lean policy fits one 141 GB
// device, f32 and mixed full fine-tuning do not, LoRA does; the same
// script asking for f32 is refused at plan time with the numbers.
func TestExp606MemoryPlan(t *testing.T) {
	repo, _ := filepath.Abs("../..")
	raw, err := os.ReadFile(filepath.Join(repo, "experiments", "exp606_sft.star"))
	if err != nil {
		t.Fatal(err)
	}
	r := marin(t, repo, nil, "experiments/exp606_sft.star", "--dry-run", "--prefix", t.TempDir())
	if r.code != 0 {
		t.Fatalf("dry run: exit %d\n%s", r.code, r.stderr)
	}
	t.Log(r.stdout)
	mustContain(t, r.stdout, "Llama-3.1-8B@d04e592", "memory plan: full fine-tuning, precision lean",
		"activation checkpointing per layer", "(fits 141.0 GB)", "f32 full fine-tuning", "(does not fit)", "LoRA r=16 all-linear (lean)", "(fits)")

	dir := t.TempDir()
	src := strings.Replace(string(raw), `precision = "lean",`, `precision = "f32",`, 1)
	if src == string(raw) {
		t.Fatal("exp606 no longer sets precision = \"lean\"")
	}
	write(t, filepath.Join(dir, "exp606_f32.star"), src)
	r = marin(t, dir, nil, "exp606_f32.star", "--dry-run", "--prefix", filepath.Join(dir, "out"))
	if r.code != 3 {
		t.Fatalf("f32 exp606: exit %d, want 3\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Log(r.stderr)
	mustContain(t, r.stderr, "exp606_f32.star:", "SimpleSFTConfig.precision", "does not fit one device", "exceeds resources.device_memory 141.0 GB",
		"weights 32.1 GB", "optimizer state 64.2 GB")
}
