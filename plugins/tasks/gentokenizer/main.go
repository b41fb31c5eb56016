// Command gentokenizer writes the quickstart's byte-level tokenizer
// (tasks.TokenizerFiles) into a directory:
//
//	go run ./plugins/tasks/gentokenizer experiments/quickstart/tokenizer
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/marin-go/marin/plugins/tasks"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gentokenizer DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	tok, cfg, sm, err := tasks.TokenizerFiles()
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	for name, data := range map[string][]byte{"tokenizer.json": tok, "tokenizer_config.json": cfg, "special_tokens_map.json": sm} {
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), data, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentokenizer:", err)
		os.Exit(1)
	}
}
