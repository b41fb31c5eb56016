//go:build !linux

package pluginhost

import "os/exec"

// killWithParent is Linux-only; elsewhere a plugin outlives a killed host.
func killWithParent(cmd *exec.Cmd) {}
