// Package cpu is the built-in "cpu" backend plugin: the pure-Go reference
// backend, compiled into the marin binary and served as `marin plugin serve
// cpu`. It serves tokenize, train, eval/exact_match and tasks/generate.
package cpu

import (
	"github.com/marin-go/marin/backends/tokenize"
	"github.com/marin-go/marin/plugins/sdk"
)

// Name is the plugin's name.
const Name = "cpu"

// Version is the plugin's version; it is recorded in .executor_info.
const Version = "0.1.0"

// Plugin describes the cpu backend plugin and its ops.
func Plugin() *sdk.Plugin {
	return &sdk.Plugin{
		Name: Name, Kind: sdk.KindBackend, Version: Version,
		Ops: trainOps(map[string]sdk.Op{
			tokenize.OpName: tokenize.Op(),
		}),
	}
}
