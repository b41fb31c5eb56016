//go:build !race

package gomlx

const raceEnabled = false
