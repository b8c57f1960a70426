// Package daemon is coalmine's in-cluster front end: it watches the CanaryPolicy objects (or
// loads every policy in a directory) and keeps them current, watches the Deployments they name,
// and drives each canary that appears with the same engine as the gate, many at once, under a
// leader-election Lease. It writes each object's status on transitions.
package daemon

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"sync"

	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/policies"
)

// Store holds the policies of a directory: per file, the last version that loaded. A file that
// turns invalid is reported and its last good version kept; a file that goes away takes its
// policies with it.
type Store struct {
	dir    string
	logger zerolog.Logger

	mu    sync.RWMutex
	files map[string]fileState
	// Derived from files on every reload, so that lookups on the informers' hot path are
	// map reads: policies by key, all of them sorted, and the keys naming each Deployment.
	byKey        map[string]*policies.Policy
	all          []*policies.Policy
	byDeployment map[string][]string // "namespace/deployment" -> policy keys
	// check refuses a policy the daemon must not run; nil admits all.
	check func(*policies.Policy) error
	// owner is the file each key's policy comes from: when two files define one key, the one
	// in force keeps it (or, for a new key, the first file by name) and the other is refused.
	owner map[string]string
}

type fileState struct {
	// sum is of the file's current content; goodSum of the version its policies came from.
	sum, goodSum [32]byte
	policies     []*policies.Policy
	err          error
}

// NewStore returns a store for dir; call Reload to read it.
func NewStore(dir string, logger zerolog.Logger) *Store {
	return &Store{dir: dir, logger: logger, files: map[string]fileState{}}
}

// WithCheck makes the store refuse, with an error for its file, every policy check refuses.
func (s *Store) WithCheck(check func(*policies.Policy) error) *Store {
	s.check = check
	return s
}

// Key names a policy: its target namespace and its name.
func Key(p *policies.Policy) string { return p.Spec.Target.Namespace + "/" + p.Metadata.Name }

// Reload reads the directory again. It returns the keys of the policies that appeared, changed or
// went away, and the problems found (an invalid file keeps its last good policies).
func (s *Store) Reload() (changed []string, problems error) {
	files, err := policies.Files(s.dir)
	if err != nil {
		return nil, err
	}
	var errs []error
	seen := map[string]bool{}
	s.mu.Lock()
	defer s.mu.Unlock()
	before := s.keysLocked()
	for _, f := range files {
		seen[f] = true
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", f, err))
			continue
		}
		sum := sha256.Sum256(data)
		old, had := s.files[f]
		if had && old.sum == sum {
			if old.err != nil {
				errs = append(errs, old.err)
			}
			continue
		}
		ps, err := policies.Load(f, data)
		if err == nil && s.check != nil {
			err = s.checkAll(f, ps)
		}
		if err != nil {
			// Keep what the file held when it last loaded.
			s.files[f] = fileState{sum: sum, goodSum: old.goodSum, policies: old.policies, err: err}
			errs = append(errs, err)
			s.logger.Error().Err(err).Str("file", f).Bool("kept_last_good", had && old.policies != nil).Msg("policy file invalid")
			continue
		}
		s.files[f] = fileState{sum: sum, goodSum: sum, policies: ps}
		s.logger.Info().Str("file", f).Int("policies", len(ps)).Msg("policy file loaded")
	}
	for f := range s.files {
		if !seen[f] {
			delete(s.files, f)
			s.logger.Info().Str("file", f).Msg("policy file removed")
		}
	}
	errs = append(errs, s.indexLocked()...)
	after := s.keysLocked()
	for k, sum := range after {
		if before[k] != sum {
			changed = append(changed, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	return changed, errors.Join(errs...)
}

// checkAll runs the store's check on a file's policies: one refused refuses the file, as an
// invalid one does.
func (s *Store) checkAll(file string, ps []*policies.Policy) error {
	var errs []error
	for _, p := range ps {
		if err := s.check(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: policy %s: %w", file, Key(p), err))
		}
	}
	return errors.Join(errs...)
}

// keysLocked maps each policy's key to a fingerprint of the file version it came from.
func (s *Store) keysLocked() map[string][32]byte {
	out := map[string][32]byte{}
	for k, f := range s.owner {
		out[k] = s.files[f].goodSum
	}
	return out
}

// indexLocked rebuilds the lookups derived from files, and returns a problem for each policy
// refused because another file already defines its key.
func (s *Store) indexLocked() []error {
	files := slices.Sorted(maps.Keys(s.files))
	// A file that still defines the key it owned keeps it, so that adding a second file for a
	// running canary cannot take it over.
	owner := map[string]string{}
	for k, f := range s.owner {
		for _, p := range s.files[f].policies {
			if Key(p) == k {
				owner[k] = f
			}
		}
	}
	var problems []error
	s.byKey = map[string]*policies.Policy{}
	s.byDeployment = map[string][]string{}
	s.all = s.all[:0]
	for _, f := range files {
		for _, p := range s.files[f].policies {
			k := Key(p)
			if o, ok := owner[k]; ok && o != f {
				err := fmt.Errorf("%s: policy %s is already defined in %s, which stays in force; this one is ignored", f, k, o)
				problems = append(problems, err)
				s.logger.Error().Err(err).Str("file", f).Str("policy", k).Msg("duplicate policy ignored")
				continue
			}
			owner[k] = f
			s.byKey[k] = p
			s.all = append(s.all, p)
		}
	}
	s.owner = owner
	sort.Slice(s.all, func(i, j int) bool { return Key(s.all[i]) < Key(s.all[j]) })
	for _, p := range s.all {
		t := p.Spec.Target
		for _, d := range []string{t.Baseline.Deployment, t.Canary.Deployment} {
			if d == "" {
				continue
			}
			k := t.Namespace + "/" + d
			if !slices.Contains(s.byDeployment[k], Key(p)) {
				s.byDeployment[k] = append(s.byDeployment[k], Key(p))
			}
		}
	}
	return problems
}

// Get returns the policy with a key.
func (s *Store) Get(key string) (*policies.Policy, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.byKey[key]
	return p, ok
}

// All returns every policy, sorted by key.
func (s *Store) All() []*policies.Policy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.all)
}

// For returns the keys of the policies that name a Deployment as baseline or canary.
func (s *Store) For(namespace, deployment string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.byDeployment[namespace+"/"+deployment])
}
