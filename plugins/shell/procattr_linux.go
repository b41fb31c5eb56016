package shell

import "syscall"

// procAttr puts the command in its own process group (so cancelling kills
// the children it started too) and has the kernel kill it if this plugin
// dies, so a killed marin leaves no command behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
