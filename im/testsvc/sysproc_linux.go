package testsvc

import "syscall"

// sysProcAttr kills the server when the test process dies without running
// its cleanups (a panic, a -timeout abort, SIGKILL).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
