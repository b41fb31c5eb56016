package graph

import (
	"crypto/md5"
	"encoding/hex"
	"strings"
	"testing"
)

func step(name, op string, cfg map[string]any) *Step {
	return &Step{Name: name, Op: op, Config: cfg, Pos: "t.star:1:1"}
}

func build(t *testing.T, prefix string, roots ...*Step) *Plan {
	t.Helper()
	p, err := Build(prefix, roots)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersionJSONIsCanonicalAndHashed(t *testing.T) {
	a := step("raw/a", "dl", map[string]any{"b": int64(2), "a": map[string]any{"y": 1.5, "x": []any{"u", true, nil}}, "html": "<&>"})
	p := build(t, "file:///pre", a)
	got := string(p.Steps[0].VersionJSON)
	want := `{"config":{"a.x.0":"u","a.x.1":true,"a.x.2":null,"a.y":1.5,"b":2,"html":"<&>"},"dependencies":[],"name":"raw/a","op":"dl"}`
	if got != want {
		t.Fatalf("version JSON\n got %s\nwant %s", got, want)
	}
	// md5 of the canonical JSON, first six hex digits.
	sum := md5.Sum([]byte(want))
	if p.Steps[0].Hash != hex.EncodeToString(sum[:])[:6] {
		t.Errorf("hash %q", p.Steps[0].Hash)
	}
	if p.Steps[0].RelPath != "raw/a-"+p.Steps[0].Hash || p.Steps[0].OutputPath != "file:///pre/raw/a-"+p.Steps[0].Hash {
		t.Errorf("paths %s %s", p.Steps[0].RelPath, p.Steps[0].OutputPath)
	}
}

func TestInputsThisOutputAndPrefixPaths(t *testing.T) {
	a := step("a", "x", map[string]any{})
	b := step("b", "y", map[string]any{
		"in":    &InputRef{Step: a, Sub: "data/"},
		"self":  ThisOutput{Sub: "logs"},
		"abs":   "file:///pre/raw/thing",
		"other": "file:///elsewhere/x",
		"note":  Unversioned{Value: map[string]any{"k": "v"}},
	})
	p := build(t, "file:///pre", b)
	if len(p.Steps) != 2 || p.Steps[0].Step != a {
		t.Fatalf("dependency not planned first: %v", p.Steps)
	}
	nb := p.Lookup(b)
	cfg := nb.Version["config"].(map[string]any)
	if cfg["in"] != "${prefix}/"+p.Lookup(a).RelPath+"/data" || cfg["self"] != "${this}/logs" ||
		cfg["abs"] != "${prefix}/raw/thing" || cfg["other"] != "file:///elsewhere/x" {
		t.Errorf("version config %v", cfg)
	}
	if _, ok := cfg["note"]; ok || len(nb.Unversioned) != 1 || nb.Unversioned[0] != "note" {
		t.Errorf("unversioned value hashed: %v %v", cfg, nb.Unversioned)
	}
	if nb.Config["in"] != p.Lookup(a).OutputPath+"/data" || nb.Config["self"] != nb.OutputPath+"/logs" {
		t.Errorf("resolved config %v", nb.Config)
	}
	if nb.Config["note"].(map[string]any)["k"] != "v" {
		t.Errorf("unversioned value not passed to the plugin: %v", nb.Config["note"])
	}
	deps := nb.Version["dependencies"].([]any)
	if len(deps) != 1 || deps[0] != "${prefix}/"+p.Lookup(a).RelPath {
		t.Errorf("dependencies %v", deps)
	}
}

func TestDependencyChangeMovesDependents(t *testing.T) {
	mk := func(v int64) *Plan {
		a := step("a", "x", map[string]any{"v": v})
		b := step("b", "y", map[string]any{"in": &InputRef{Step: a}})
		c := step("c", "z", map[string]any{})
		return build(t, "mem://p", b, c)
	}
	p1, p2 := mk(1), mk(2)
	for i, name := range []string{"a", "b", "c"} {
		moved := p1.Steps[i].RelPath != p2.Steps[i].RelPath
		if moved != (name != "c") {
			t.Errorf("step %s moved=%v", name, moved)
		}
	}
}

func TestOverridesMergesAndErrors(t *testing.T) {
	a1 := step("a", "x", map[string]any{"k": int64(1)})
	a2 := step("a", "x", map[string]any{"k": int64(1)})
	p := build(t, "file:///pre", a1, a2)
	if len(p.Steps) != 1 || p.Lookup(a1) != p.Lookup(a2) {
		t.Errorf("identical steps not merged")
	}
	o := step("raw/x", "dl", nil)
	o.OverrideOutputPath = "raw/x-fixed"
	u := step("u", "dl", nil)
	u.OverrideOutputPath = "gs://bucket/y/"
	p = build(t, "file:///pre", o, u)
	if p.Lookup(o).OutputPath != "file:///pre/raw/x-fixed" || p.Lookup(u).OutputPath != "gs://bucket/y" {
		t.Errorf("overrides %s %s", p.Lookup(o).OutputPath, p.Lookup(u).OutputPath)
	}
	for _, c := range []struct {
		s    *Step
		want string
	}{
		{step("", "x", nil), "empty name"},
		{step("n", "", nil), "has no op"},
		{step("n", "x", map[string]any{"a.b": int64(1)}), "contains a dot"},
		{step("n", "x", map[string]any{"f": struct{}{}}), "unsupported type"},
	} {
		_, err := Build("file:///pre", []*Step{c.s})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "t.star:1:1") {
			t.Errorf("got %v, want %q with position", err, c.want)
		}
	}
	x := step("x", "op", nil)
	y := step("y", "op", nil)
	x.OverrideOutputPath, y.OverrideOutputPath = "same", "same"
	if _, err := Build("file:///pre", []*Step{x, y}); err == nil || !strings.Contains(err.Error(), "both write") {
		t.Errorf("two steps on one path: %v", err)
	}
	c1 := step("c1", "op", map[string]any{})
	c2 := step("c2", "op", map[string]any{"in": &InputRef{Step: c1}})
	c1.Config["in"] = &InputRef{Step: c2}
	if _, err := Build("file:///pre", []*Step{c2}); err == nil || !strings.Contains(err.Error(), "dependency cycle") {
		t.Errorf("cycle: %v", err)
	}
}
