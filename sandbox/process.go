package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"
)

// process is a child process of the sandbox: Prometheus or a component of
// the cluster. It runs in its own process group, dies with the test binary
// (see sysProcAttr), keeps the tail of its output for errors, and is stopped
// with SIGTERM, then SIGKILL after a grace period.
type process struct {
	name    string        // for messages: "prometheus", "kube-apiserver"
	cmd     *exec.Cmd     // started
	logs    *logSink      // tail of stdout and stderr
	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // the exit status; read only after done is closed
	killed  atomic.Bool   // kill was called, so an exit is expected
	// anyExitOnTerm makes terminate accept any exit status after SIGTERM:
	// kube-scheduler exits 1, etcd and kube-controller-manager die of it.
	anyExitOnTerm bool
}

// startProcess runs bin with args in dir. Its stdout and stderr go to the
// given writers; a nil one goes to the file logPath instead, which is
// created or appended to.
func startProcess(name, bin string, args []string, dir string, stdout, stderr io.Writer, logPath string) (*process, error) {
	var logFile *os.File
	if stdout == nil || stderr == nil {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log: %w", err)
		}
		logFile = f
		if stdout == nil {
			stdout = f
		}
		if stderr == nil {
			stderr = f
		}
	}
	logs := &logSink{}
	// Not exec.CommandContext: its cancellation sends SIGKILL only to the
	// direct child, while stopping wants SIGTERM, a grace period and the group.
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logs.writer(stdout)
	cmd.Stderr = logs.writer(stderr)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	p := &process{name: name, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// kill sends SIGKILL to the process group now and waits for the exit.
func (p *process) kill() {
	p.killed.Store(true)
	p.signal(syscall.SIGKILL)
	<-p.done
}

// terminate sends SIGTERM, waits up to timeout, then SIGKILLs. It reports a
// process that had to be killed, that failed its shutdown, or that had
// exited on its own before terminate or kill.
func (p *process) terminate(timeout time.Duration) error {
	select {
	case <-p.done:
		if !p.killed.Load() {
			return fmt.Errorf("%s exited on its own (%v); last log lines:\n%s", p.name, p.exitStatus(), p.logs.lastLines(logLines))
		}
		return nil
	default:
	}
	p.signal(syscall.SIGTERM)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.waitErr != nil && !p.killed.Load() && !p.anyExitOnTerm {
			return fmt.Errorf("%s shutdown: %w", p.name, p.waitErr)
		}
		return nil
	case <-timer.C:
		p.kill()
		return fmt.Errorf("%s still running %s after SIGTERM; killed it", p.name, timeout)
	}
}

// signal sends sig to the process group unless the process has exited
// already (its pid could then belong to another process).
func (p *process) signal(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	// ESRCH means it exited in the meantime; nothing else can fail here.
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// exitStatus describes how the process ended; call it after done is closed.
func (p *process) exitStatus() string {
	if p.waitErr == nil {
		return "exit status 0"
	}
	return p.waitErr.Error()
}

// errExitedEarly is returned by exited for a process that is gone.
var errExitedEarly = errors.New("exited before becoming ready")

// exited returns an error quoting the log if the process has exited, and
// nil while it runs; readiness loops call it on every tick.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s %w (%s); last log lines:\n%s", p.cmd.Path, errExitedEarly, p.exitStatus(), p.logs.lastLines(logLines))
	default:
		return nil
	}
}
