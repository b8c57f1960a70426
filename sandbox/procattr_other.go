//go:build unix && !linux

package sandbox

import "syscall"

// sysProcAttr puts Prometheus in its own process group, so that Stop and
// Kill signal it and anything it spawns. Without Linux's Pdeathsig, a test
// binary killed before its cleanups run leaves Prometheus running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
