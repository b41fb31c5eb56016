package sdk

import (
	"os/exec"
	"syscall"
)

// killWithParent has the kernel kill a plugin this process started when
// this process dies, so a killed op leaves no format plugin running.
func killWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
