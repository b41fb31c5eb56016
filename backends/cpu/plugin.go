// Package cpu is the built-in "cpu" backend plugin: the pure-Go reference
// backend, compiled into the marin binary and served as `marin plugin serve
// cpu`. It serves the tokenize op today; training and generation ops join
// its op table as they land.
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
		Ops: map[string]sdk.Op{
			tokenize.OpName: tokenize.Op(),
		},
	}
}
