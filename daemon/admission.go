package daemon

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/coalmine/coalmine/policies"
)

// admission is what a policy must meet for the daemon to run it, beyond being valid: it acts
// only in the namespaces the daemon was given, and reads credentials only from its directory.
func admission(opts Options) func(*policies.Policy) error {
	return func(p *policies.Policy) error {
		if ns := p.Spec.Target.Namespace; len(opts.Namespaces) > 0 && !slices.Contains(opts.Namespaces, ns) {
			return fmt.Errorf("targets namespace %q, outside the daemon's --namespaces %s", ns, strings.Join(opts.Namespaces, ","))
		}
		for _, f := range p.Spec.Prometheus.Files() {
			if !within(opts.CredentialsDir, f) {
				if opts.CredentialsDir == "" {
					return fmt.Errorf("spec.prometheus.http reads %q: the daemon reads no credentials files unless --credentials-dir allows a directory", f)
				}
				return fmt.Errorf("spec.prometheus.http reads %q, outside --credentials-dir %s", f, opts.CredentialsDir)
			}
		}
		for _, n := range p.Spec.Notifications {
			for _, f := range n.Files() {
				if !within(opts.CredentialsDir, f) {
					return fmt.Errorf("spec.notifications %s reads %q, outside --credentials-dir %q", n.Name, f, opts.CredentialsDir)
				}
			}
		}
		return nil
	}
}

// within reports whether path is inside dir, symbolic links followed where they exist.
func within(dir, path string) bool {
	if dir == "" || !filepath.IsAbs(path) {
		return false
	}
	real := func(p string) string {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return filepath.Clean(p)
	}
	rel, err := filepath.Rel(real(dir), real(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && rel != "."
}
