package starlib

import (
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// A builtin knows the position of its call (the call's opening parenthesis,
// thread.CallFrame(1).Pos), but not of each argument. Diagnostics found
// later, at plan time, should point at the argument itself
// (`exp.star:12:7: SimpleSFTConfig.learning_rate: …`), so the call site is
// looked up in the script's syntax tree: sites maps each keyword argument,
// and each string key of a dict literal given as an argument, to its
// position.

// sourceFiles holds the scripts an evaluation read, parsed on demand. One is
// shared by the main thread and the threads that load() modules.
type sourceFiles struct {
	src    map[string][]byte
	parsed map[string]*syntax.File
}

const sourcesKey = "marin.sources"

func newSourceFiles() *sourceFiles {
	return &sourceFiles{src: map[string][]byte{}, parsed: map[string]*syntax.File{}}
}

func (s *sourceFiles) add(filename string, src []byte) { s.src[filename] = src }

func (s *sourceFiles) file(name string) *syntax.File {
	if f, ok := s.parsed[name]; ok {
		return f
	}
	var f *syntax.File
	if src, ok := s.src[name]; ok {
		f, _ = fileOptions.Parse(name, src, 0)
	}
	s.parsed[name] = f
	return f
}

// callSite is one builtin call in a script.
type callSite struct {
	pos syntax.Position
	// args maps a keyword argument to the position of its name, and
	// "kw.key" (nested: "kw.key.sub") to the position of a string key of a
	// dict literal given as that argument.
	args map[string]syntax.Position
}

// at returns the position recorded for key, else the call's.
func (c *callSite) at(key string) syntax.Position {
	if c != nil {
		if p, ok := c.args[key]; ok {
			return p
		}
		return c.pos
	}
	return syntax.Position{}
}

// site looks up the call of the builtin now running. It never fails: with
// no syntax tree (a script given as bytes that were not recorded, a call
// through apply-like indirection) only the call position is known.
func site(thread *starlark.Thread) *callSite {
	cs := &callSite{pos: callerPos(thread), args: map[string]syntax.Position{}}
	files, _ := thread.Local(sourcesKey).(*sourceFiles)
	if files == nil || !cs.pos.IsValid() {
		return cs
	}
	f := files.file(cs.pos.Filename())
	if f == nil {
		return cs
	}
	var call *syntax.CallExpr
	syntax.Walk(f, func(n syntax.Node) bool {
		if call != nil {
			return false
		}
		if c, ok := n.(*syntax.CallExpr); ok && c.Lparen.Line == cs.pos.Line && c.Lparen.Col == cs.pos.Col {
			call = c
			return false
		}
		return true
	})
	if call == nil {
		return cs
	}
	for _, a := range call.Args {
		b, ok := a.(*syntax.BinaryExpr)
		if !ok || b.Op != syntax.EQ {
			continue
		}
		id, ok := b.X.(*syntax.Ident)
		if !ok {
			continue
		}
		cs.args[id.Name] = id.NamePos
		dictKeys(id.Name, b.Y, cs.args)
	}
	return cs
}

// dictKeys records the string keys of a dict literal (recursively).
func dictKeys(prefix string, e syntax.Expr, out map[string]syntax.Position) {
	d, ok := e.(*syntax.DictExpr)
	if !ok {
		return
	}
	for _, x := range d.List {
		entry, ok := x.(*syntax.DictEntry)
		if !ok {
			continue
		}
		lit, ok := entry.Key.(*syntax.Literal)
		if !ok || lit.Token != syntax.STRING {
			continue
		}
		key, _ := lit.Value.(string)
		path := prefix + "." + key
		out[path] = lit.TokenPos
		dictKeys(path, entry.Value, out)
	}
}
