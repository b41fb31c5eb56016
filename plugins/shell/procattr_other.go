//go:build !linux

package shell

import "syscall"

// procAttr puts the command in its own process group (so cancelling kills
// the children it started too).
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
