package sdk_test

import (
	"context"
	"fmt"
	"os"

	"github.com/marin-go/marin/plugins/sdk"
)

// A whole third-party plugin: main calls Serve.
func ExampleServe() {
	sdk.Serve(&sdk.Plugin{
		Name: "hello", Kind: sdk.KindGeneric, Version: "0.1.0",
		Ops: map[string]sdk.Op{"hello/greet": {
			Description: "write a greeting into the output directory",
			Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
				name, err := req.String("name")
				if err != nil {
					return err // reaches the host as a diagnostic naming the key
				}
				dir, err := sdk.LocalPath(req.OutputPath)
				if err != nil {
					return err
				}
				r.Log("info", "greeting", "name", name)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				return os.WriteFile(dir+"/greeting.txt", []byte("hello, "+name+"\n"), 0o644)
			},
		}},
	})
}

// How `marin plugin serve NAME` serves one of the plugins built into the
// marin binary.
func ExampleServeNamed() {
	builtins := []*sdk.Plugin{ /* shell.Plugin(), … */ }
	name := os.Args[len(os.Args)-1]
	if err := sdk.ServeNamed(name, builtins...); err != nil {
		fmt.Fprintln(os.Stderr, "marin plugin serve:", err)
		os.Exit(2)
	}
}
