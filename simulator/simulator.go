package simulator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"k8s.io/client-go/kubernetes"
)

// ErrStopped is returned by Apply once the simulator is stopped.
var ErrStopped = errors.New("simulator stopped")

// shutdownTimeout bounds how long a removed pod's server waits for in-flight scrapes.
const shutdownTimeout = 2 * time.Second

// Options configure where the simulated pods come from, where they listen and where their
// targets are written.
type Options struct {
	// Kube, when set, selects cluster mode: the pods are the Ready pods of a Kubernetes API server
	// rather than the scenario's pod counts, and each listens on its pod IP and
	// prometheus.io/port. The package documentation gives the rules.
	Kube kubernetes.Interface
	// Host is the address pod listeners bind to; empty means 127.0.0.1. Unused in cluster mode.
	Host string
	// BasePort is the first port pods listen on, counting up; 0 means a random free port per pod.
	// Unused in cluster mode.
	BasePort int
	// TargetHost is the host written to the targets file and to Target.Address. Empty means Host,
	// or 127.0.0.1 when Host is a wildcard address such as 0.0.0.0. Unused in cluster mode, where
	// the address is the pod IP.
	TargetHost string
	// TargetsFile is the Prometheus file_sd file kept in step with the pods; empty writes none.
	// Cluster mode needs none, as Prometheus discovers the pods itself, but writes it when set,
	// for a Prometheus built without Kubernetes discovery.
	TargetsFile string
	// Logger receives the simulator's logs; the zero value discards them.
	Logger zerolog.Logger
}

// Simulator runs the pods of a scenario. Its methods are safe for concurrent use.
type Simulator struct {
	opts       Options
	logger     zerolog.Logger
	host       string
	targetHost string

	// applyMu serialises Apply and Stop, which change the pod set and write the targets file.
	applyMu      sync.Mutex
	stopped      bool
	targetsDirty bool

	// mu guards scenario, pods and each pod's spec and rng. Writers of either also hold applyMu.
	mu       sync.Mutex
	scenario Scenario
	pods     map[string]*pod // by pod.id

	// cluster is the Kubernetes side of cluster mode; nil in static mode.
	cluster *cluster

	tickChanged chan struct{}
	cancel      context.CancelFunc
	done        chan struct{}
	serving     sync.WaitGroup
	stopOnce    sync.Once
	stopErr     error
}

// Start validates the scenario, starts its pods, writes the targets file and advances the
// counters every scenario tick until ctx is done or Stop is called. Pods are served until Stop.
//
// In cluster mode (Options.Kube set) Start also waits, bounded by ctx and a minute, until it has
// listed the Pods and Services of the scenario's namespaces, so that Targets lists the Ready pods
// when it returns.
func Start(ctx context.Context, s Scenario, opts Options) (*Simulator, error) {
	sim, err := newSimulator(s, opts)
	if err != nil {
		return nil, err
	}
	if sim.cluster != nil {
		if err := sim.waitForCaches(ctx); err != nil {
			_ = sim.Stop() // the sync error is the one to report
			return nil, fmt.Errorf("start simulator: %w", err)
		}
	}
	ctx, sim.cancel = context.WithCancel(ctx)
	sim.done = make(chan struct{})
	go sim.run(ctx)
	return sim, nil
}

// newSimulator starts the pods without the ticker, so that tests can drive step by hand. In cluster
// mode it starts the informers but does not wait for them: see waitForCaches.
func newSimulator(s Scenario, opts Options) (*Simulator, error) {
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	targetHost := opts.TargetHost
	if targetHost == "" {
		targetHost = host
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			targetHost = "127.0.0.1"
		}
	}
	sim := &Simulator{
		opts:         opts,
		logger:       opts.Logger,
		host:         host,
		targetHost:   targetHost,
		targetsDirty: true,
		pods:         make(map[string]*pod),
		tickChanged:  make(chan struct{}, 1),
	}
	if opts.Kube != nil {
		sim.cluster = newCluster(opts.Kube)
		sim.startWorker()
	}
	if err := sim.Apply(s); err != nil {
		if sim.cluster != nil {
			_ = sim.Stop() // stops the worker and informers; the Apply error is the one to report
		}
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	return sim, nil
}

// Apply replaces the running scenario. Pods that remain, matched by namespace, app, version and
// index, keep their names and counters and take the new behaviour; new pods start; removed pods
// stop being served and leave the targets file. On error nothing changes, except that a targets
// file that could not be written is retried on the next Apply.
//
// In cluster mode the pods stay those of the cluster: Apply changes their rates, error rates and
// latencies without resetting their counters, watches the namespaces of the new scenario's apps,
// and starts or stops the pods that the new app and version names select.
func (s *Simulator) Apply(sc Scenario) error {
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("apply scenario: %w", err)
	}
	sc = sc.clone()

	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	if s.cluster != nil {
		return s.applyCluster(sc)
	}

	specs := plan(sc)
	usedPorts := make(map[int]bool, len(s.pods))
	usedNames := make(map[string]bool, len(s.pods))
	for _, p := range s.pods {
		usedPorts[p.port] = true
		usedNames[p.name] = true
	}
	want := make(map[podKey]podSpec, len(specs))
	var added []*pod
	for _, spec := range specs {
		want[spec.key] = spec
		if _, ok := s.pods[spec.key.id()]; ok {
			continue
		}
		p, err := s.newPod(sc.Seed, spec, usedPorts, usedNames)
		if err != nil {
			for _, a := range added {
				_ = a.listener.Close() // never served: nothing else to clean up
			}
			return fmt.Errorf("apply scenario: %w", err)
		}
		added = append(added, p)
	}

	var removed []*pod
	s.mu.Lock()
	for id, p := range s.pods {
		if spec, ok := want[p.key]; ok {
			p.spec = spec
			continue
		}
		removed = append(removed, p)
		delete(s.pods, id)
	}
	slices.SortFunc(removed, comparePods)
	for _, p := range added {
		s.pods[p.id] = p
	}
	tickChanged := s.setScenarioLocked(sc)
	targets := s.targetsLocked()
	s.mu.Unlock()

	for _, p := range added {
		s.serve(p)
	}
	s.stopPods(removed)
	s.tickMaybeChanged(tickChanged)
	s.logger.Info().Int("pods", len(targets)).Int("added", len(added)).Int("removed", len(removed)).
		Msg("scenario applied")

	s.targetsDirty = s.targetsDirty || len(added) > 0 || len(removed) > 0
	if err := s.writeTargetsLocked(targets); err != nil {
		return fmt.Errorf("apply scenario: %w", err)
	}
	return nil
}

// setScenarioLocked replaces the scenario and reports whether the tick changed. The caller holds
// applyMu and mu.
func (s *Simulator) setScenarioLocked(sc Scenario) bool {
	tickChanged := sc.Tick != s.scenario.Tick
	s.scenario = sc
	return tickChanged
}

// tickMaybeChanged wakes run to reset its ticker when the tick changed.
func (s *Simulator) tickMaybeChanged(changed bool) {
	if !changed {
		return
	}
	select {
	case s.tickChanged <- struct{}{}:
	default: // a change is already pending; run reads the latest tick
	}
}

// writeTargetsLocked writes the targets file when one is asked for and the pod set changed since
// the last successful write. The caller holds applyMu.
func (s *Simulator) writeTargetsLocked(targets []Target) error {
	if !s.targetsDirty || s.opts.TargetsFile == "" {
		s.targetsDirty = false
		return nil
	}
	if err := writeTargetsFile(s.opts.TargetsFile, targets); err != nil {
		return err
	}
	s.logger.Debug().Str("path", s.opts.TargetsFile).Int("targets", len(targets)).Msg("targets file written")
	s.targetsDirty = false
	return nil
}

// newPod opens a listener for a pod and names it, avoiding the ports and names already used.
func (s *Simulator) newPod(seed uint64, spec podSpec, usedPorts map[int]bool, usedNames map[string]bool) (*pod, error) {
	name := podName(seed, spec.key, 0)
	for attempt := 1; usedNames[name]; attempt++ {
		name = podName(seed, spec.key, attempt)
	}
	ln, err := s.listen(usedPorts)
	if err != nil {
		return nil, fmt.Errorf("pod %q: %w", name, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	k := spec.key
	p, err := newPod(spec, podIdentity{
		id:           k.id(),
		name:         name,
		templateHash: podTemplateHash(seed, k),
		address:      net.JoinHostPort(s.targetHost, strconv.Itoa(port)),
		path:         defaultMetricsPath,
		stream:       hash64(fmt.Sprintf("%s/%s/%s/%d", k.namespace, k.app, k.version, k.index)),
		seed:         seed,
	}, ln)
	if err != nil {
		_ = ln.Close() // never served
		return nil, err
	}
	usedPorts[p.port] = true
	usedNames[name] = true
	return p, nil
}

func (s *Simulator) listen(usedPorts map[int]bool) (net.Listener, error) {
	port := s.opts.BasePort
	if port != 0 {
		for usedPorts[port] {
			port++
		}
	}
	addr := net.JoinHostPort(s.host, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %q: %w", addr, err)
	}
	return ln, nil
}

func (s *Simulator) serve(p *pod) {
	log := s.podLogger(p)
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		if err := p.server.Serve(p.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("pod metrics server stopped")
		}
	}()
	log.Info().Msg("pod started")
}

func (s *Simulator) stopPods(pods []*pod) {
	if len(pods) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, p := range pods {
		log := s.podLogger(p)
		if err := p.server.Shutdown(ctx); err != nil {
			log.Warn().Err(err).Msg("pod shutdown timed out")
			_ = p.server.Close() // already reported; closing is all that is left
		}
		log.Info().Msg("pod stopped")
	}
}

func (s *Simulator) podLogger(p *pod) zerolog.Logger {
	return s.logger.With().
		Str("namespace", p.key.namespace).
		Str("app", p.key.app).
		Str("version", p.key.version).
		Str("pod", p.name).
		Str("address", p.address).
		Logger()
}

// run advances the counters every tick, by the real time elapsed since the previous tick so that
// late or dropped ticks do not change the rates.
func (s *Simulator) run(ctx context.Context) {
	defer close(s.done)
	ticker := time.NewTicker(s.tick())
	defer ticker.Stop()
	last := time.Now()
	for {
		select {
		case now := <-ticker.C:
			s.step(now.Sub(last))
			last = now
		case <-s.tickChanged:
			ticker.Reset(s.tick())
		case <-ctx.Done():
			return
		}
	}
}

func (s *Simulator) tick() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Duration(s.scenario.Tick)
}

// step advances every pod's counters by dt of simulated time.
func (s *Simulator) step(dt time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pods {
		p.advance(dt)
	}
}

// Targets returns the running pods, sorted by namespace, app, version and index.
func (s *Simulator) Targets() []Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.targetsLocked()
}

func (s *Simulator) targetsLocked() []Target {
	targets := make([]Target, 0, len(s.pods))
	for _, p := range s.pods {
		targets = append(targets, Target{
			Namespace:       p.key.namespace,
			App:             p.key.app,
			Version:         p.key.version,
			Index:           p.spec.key.index,
			Pod:             p.name,
			PodTemplateHash: p.templateHash,
			Address:         p.address,
			RPS:             p.spec.rps,
		})
	}
	slices.SortFunc(targets, compareTargets)
	return targets
}

// Scenario returns a copy of the running scenario.
func (s *Simulator) Scenario() Scenario {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scenario.clone()
}

// Stop stops the ticker and every pod, and empties the targets file so that Prometheus stops
// scraping. It is safe to call more than once; later calls return the first call's error.
func (s *Simulator) Stop() error {
	s.stopOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
			<-s.done
		}
		s.applyMu.Lock()
		s.stopped = true
		s.applyMu.Unlock()
		if s.cluster != nil {
			// Outside applyMu: the worker takes it to sync, and returns once it sees stopped.
			s.stopCluster()
		}
		s.applyMu.Lock()
		defer s.applyMu.Unlock()
		s.mu.Lock()
		pods := slices.SortedFunc(maps.Values(s.pods), comparePods)
		clear(s.pods)
		s.mu.Unlock()
		s.stopPods(pods)
		s.serving.Wait()
		if s.opts.TargetsFile != "" {
			if err := writeTargetsFile(s.opts.TargetsFile, nil); err != nil {
				s.stopErr = fmt.Errorf("stop simulator: %w", err)
			}
		}
	})
	return s.stopErr
}
