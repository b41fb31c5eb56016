package tasks

import "github.com/marin-go/marin/plugins/sdk"

// PluginName is the built-in plugin serving the synthetic tasks.
const PluginName = "tasks"

// Plugin is the built-in "tasks" dataset plugin (`marin plugin serve tasks`):
// the quickstart's synthetic data source.
func Plugin() *sdk.Plugin {
	return &sdk.Plugin{
		Name: PluginName, Kind: sdk.KindDataset, Version: "0.1.0",
		Ops: map[string]sdk.Op{OpName: Op()},
	}
}
