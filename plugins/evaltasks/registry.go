package evaltasks

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
)

//go:embed registry/*.yaml
var registryFS embed.FS

var (
	registryOnce sync.Once
	registry     *Collection
	registryErr  error
)

// Registry returns the built-in tasks and groups (registry/*.yaml; files
// starting with "_" are only included by others).
func Registry() (*Collection, error) {
	registryOnce.Do(func() {
		registry, registryErr = loadDir(registryFS, "registry")
	})
	return registry, registryErr
}

func loadDir(fsys fs.FS, dir string) (*Collection, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	c := NewCollection()
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), "_") || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		p := path.Join(dir, e.Name())
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		docs, err := Parse(fsys, dir, p, data)
		if err != nil {
			return nil, err
		}
		if err := c.Add(p, docs); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Lookup returns the suite of a registered task or group.
func Lookup(name string) (*Suite, error) {
	c, err := Registry()
	if err != nil {
		return nil, fmt.Errorf("task registry: %w", err)
	}
	if !c.Has(name) {
		return nil, fmt.Errorf("no evaluation task %q in the registry (known: %s)", name, strings.Join(c.TopLevel(), ", "))
	}
	return c.Suite(name)
}

// TopLevel lists the names that are no group's member (the benchmarks a
// user asks for), sorted.
func (c *Collection) TopLevel() []string {
	member := map[string]bool{}
	for _, d := range c.docs {
		if d.Group != nil {
			for _, m := range d.Group.Task {
				member[m] = true
			}
		}
	}
	var out []string
	for _, n := range c.order {
		if !member[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Info summarises a registered benchmark for listings.
type Info struct {
	Name        string
	Tasks       int
	OutputTypes []string
	Shots       int
	Datasets    []string // "owner/name@revision"
	Unsafe      bool
}

// Infos describes every top-level registry entry.
func Infos() ([]Info, error) {
	c, err := Registry()
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, n := range c.TopLevel() {
		s, err := c.Suite(n)
		if err != nil {
			return nil, err
		}
		in := Info{Name: n, Tasks: len(s.Tasks), Unsafe: len(s.UnsafeCode()) > 0}
		seenT, seenD := map[string]bool{}, map[string]bool{}
		for _, t := range s.Tasks {
			if !seenT[t.OutputType] {
				seenT[t.OutputType] = true
				in.OutputTypes = append(in.OutputTypes, t.OutputType)
			}
			d := t.DatasetPath + "@" + t.Revision()
			if !seenD[d] {
				seenD[d] = true
				in.Datasets = append(in.Datasets, d)
			}
			in.Shots = t.Shots()
		}
		out = append(out, in)
	}
	return out, nil
}
