package daemon

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/rs/zerolog"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/coalmine/coalmine/policies"
)

// policyResource is the CanaryPolicy API resource the daemon watches.
var policyResource = schema.GroupVersionResource{Group: policies.Group, Version: policies.Version, Resource: policies.Resource}

// policySource is where the controller finds policies: a directory (Store) or the CanaryPolicy
// objects (objectStore).
type policySource interface {
	Get(key string) (*policies.Policy, bool)
	All() []*policies.Policy
	For(namespace, deployment string) []string
}

// objectStore holds the policies of the CanaryPolicy objects, fed by an informer: per object,
// the last generation that was valid. An object whose new generation is invalid (or refused by
// the daemon's admission) is reported through its status and an Event, and its last good
// generation stays in force, as an invalid file's last good version does.
type objectStore struct {
	check  func(*policies.Policy) error
	logger zerolog.Logger

	mu           sync.RWMutex
	good         map[string]goodObject // by key, namespace/name
	refused      map[string]refusal    // by key: the current generation's problems
	all          []*policies.Policy
	byDeployment map[string][]string
}

type goodObject struct {
	policy     *policies.Policy
	uid        string
	generation int64
}

// refusal is why an object's generation is not in force.
type refusal struct {
	uid        string
	generation int64
	err        error
}

func newObjectStore(check func(*policies.Policy) error, logger zerolog.Logger) *objectStore {
	return &objectStore{check: check, logger: logger, good: map[string]goodObject{}, refused: map[string]refusal{}}
}

// objectKey names an object's policy: its namespace and name, which is Key of the policy.
func objectKey(o *unstructured.Unstructured) string { return o.GetNamespace() + "/" + o.GetName() }

// set reads an object's current generation. It reports whether the policy in force changed,
// and whether the generation was refused; a status write, which changes no generation, does
// neither.
func (s *objectStore) set(o *unstructured.Unstructured) (inForce, refused bool) {
	key := objectKey(o)
	s.mu.Lock()
	defer s.mu.Unlock()
	g, had := s.good[key]
	if had && g.uid == string(o.GetUID()) && g.generation == o.GetGeneration() {
		return false, false
	}
	if r, ok := s.refused[key]; ok && r.uid == string(o.GetUID()) && r.generation == o.GetGeneration() {
		return false, false
	}
	if had && g.uid != string(o.GetUID()) {
		// Deleted and created again: nothing of the old object stays in force.
		delete(s.good, key)
		had, inForce = false, true
	}
	p, err := policies.LoadObject(o.Object)
	if err == nil && s.check != nil {
		err = s.check(p)
	}
	if err != nil {
		s.refused[key] = refusal{uid: string(o.GetUID()), generation: o.GetGeneration(), err: err}
		s.logger.Error().Err(err).Str("policy", key).Int64("generation", o.GetGeneration()).Bool("kept_last_good", had).Msg("policy object invalid")
		s.indexLocked()
		return inForce, true
	}
	delete(s.refused, key)
	s.good[key] = goodObject{policy: p, uid: string(o.GetUID()), generation: o.GetGeneration()}
	s.logger.Info().Str("policy", key).Int64("generation", o.GetGeneration()).Msg("policy object loaded")
	s.indexLocked()
	return true, false
}

// remove forgets a deleted object.
func (s *objectStore) remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.good, key)
	delete(s.refused, key)
	s.indexLocked()
	s.logger.Info().Str("policy", key).Msg("policy object removed")
}

// refusedAt returns why the object's current generation is not in force, nil when it is.
func (s *objectStore) refusedAt(key string) (error, int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.refused[key]
	if !ok {
		return nil, 0
	}
	return r.err, r.generation
}

// generation is the generation of the object whose policy is in force.
func (s *objectStore) generation(key string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.good[key].generation
}

func (s *objectStore) indexLocked() {
	s.all = s.all[:0]
	s.byDeployment = map[string][]string{}
	for _, g := range s.good {
		s.all = append(s.all, g.policy)
	}
	sort.Slice(s.all, func(i, j int) bool { return Key(s.all[i]) < Key(s.all[j]) })
	for _, p := range s.all {
		t := p.Spec.Target
		for _, d := range []string{t.Baseline.Deployment, t.Canary.Deployment} {
			if k := t.Namespace + "/" + d; d != "" && !slices.Contains(s.byDeployment[k], Key(p)) {
				s.byDeployment[k] = append(s.byDeployment[k], Key(p))
			}
		}
	}
}

// Get returns the policy in force under a key.
func (s *objectStore) Get(key string) (*policies.Policy, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.good[key]
	return g.policy, ok
}

// All returns every policy in force, sorted by key.
func (s *objectStore) All() []*policies.Policy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.all)
}

// For returns the keys of the policies that name a Deployment as baseline or canary.
func (s *objectStore) For(namespace, deployment string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.byDeployment[namespace+"/"+deployment])
}

// message words a refusal for a status and an Event: one problem per line, as validate prints
// them, without a file.
func message(err error) string {
	var fe policies.Errors
	if errors.As(err, &fe) {
		return fe.Error()
	}
	return fmt.Sprint(err)
}
