//go:build race

package gomlx

// raceEnabled: the race detector slows the pure-Go engine's loops many
// times; long measurements run fewer cases under it.
const raceEnabled = true
