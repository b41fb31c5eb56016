//go:build !linux

package sdk

import "os/exec"

// killWithParent: only Linux can tie a child's life to its parent's; go-plugin
// still stops the plugin when this process exits cleanly.
func killWithParent(*exec.Cmd) {}
