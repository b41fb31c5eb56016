package pluginhost

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the kernel kill a plugin process when the host dies,
// so a SIGKILLed marin leaves no plugin running on (go-plugin only notices a
// graceful host exit).
func killWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
