package pluginhost_test

import (
	"context"
	"fmt"
	"os"

	"github.com/rs/zerolog"

	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/host/pluginhost"
	"github.com/marin-go/marin/plugins/sdk"
)

// How cmd/marin wires the plugin manager: the built-in plugins are passed as
// sdk.Plugin values (the same list `marin plugin serve NAME` serves from),
// third-party plugins are found on the default plugin path.
func ExampleNew() {
	builtins := []*sdk.Plugin{ /* shell.Plugin(), … */ }
	m, err := pluginhost.New(pluginhost.Config{
		Builtins: builtins,
		Logger:   zerolog.New(os.Stderr).Level(zerolog.InfoLevel),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var runner executor.Runner = m // what the executor takes
	err = runner.Run(context.Background(), executor.RunRequest{
		StepName: "wc", Op: "wordcount/count", OutputPath: "file:///tmp/out/wc-1a2b3c", Attempt: 1,
		Config: map[string]any{"input": "/data/book.txt"},
	}, func(ev executor.Event) { fmt.Println(ev.Message) })
	fmt.Println(err)

	// `marin plugins`:
	for _, p := range m.List() {
		if p.Err != nil {
			fmt.Printf("%s: %v\n", p.Path, p.Err)
			continue
		}
		fmt.Println(p.Name, p.Kind, p.Version, p.Path, len(p.Ops))
	}
}
