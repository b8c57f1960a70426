package sandbox

import "syscall"

// sysProcAttr puts Prometheus in its own process group, so that Stop and
// Kill signal it and anything it spawns, and asks the kernel to SIGKILL it
// if the thread that started it dies: a test binary killed by `go test
// -timeout` or by CI never runs its cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
