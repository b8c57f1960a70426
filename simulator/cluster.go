package simulator

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// cacheSyncTimeout bounds Start's wait for the first list of Pods and Services, so that an
// unreachable API server or missing RBAC fails the start instead of hanging it.
const cacheSyncTimeout = time.Minute

// cluster is the Kubernetes side of cluster mode: an informer factory per namespace of the
// scenario's apps, and a queue of namespaces to sync, fed by the informers' event handlers.
type cluster struct {
	client kubernetes.Interface
	queue  workqueue.TypedInterface[string]
	worker sync.WaitGroup

	// watches and failed are guarded by Simulator.applyMu.
	watches map[string]*namespaceWatch
	failed  map[string]listenFailure // by pod id
}

// namespaceWatch is the informers of one namespace.
type namespaceWatch struct {
	factory  informers.SharedInformerFactory
	pods     corev1listers.PodLister
	services corev1listers.ServiceLister
	ctx      context.Context // done once the watch is dropped
	cancel   context.CancelFunc
}

// listenFailure remembers a pod that could not listen, to log each failure once and to retry it
// when another pod frees an address.
type listenFailure struct {
	namespace, address string
}

func newCluster(client kubernetes.Interface) *cluster {
	return &cluster{
		client:  client,
		queue:   workqueue.NewTyped[string](),
		watches: make(map[string]*namespaceWatch),
		failed:  make(map[string]listenFailure),
	}
}

// startWorker starts the goroutine that syncs the namespaces the event handlers queue. A single
// worker is enough: every sync holds applyMu anyway.
func (s *Simulator) startWorker() {
	c := s.cluster
	c.worker.Go(func() {
		for {
			ns, shutdown := c.queue.Get()
			if shutdown {
				return
			}
			s.syncNamespace(ns)
			c.queue.Done(ns)
		}
	})
}

// stopCluster stops the worker and the informers. The caller has set stopped and does not hold
// applyMu.
func (s *Simulator) stopCluster() {
	c := s.cluster
	c.queue.ShutDown()
	c.worker.Wait()
	s.applyMu.Lock()
	watches := c.watches
	c.watches = nil
	s.applyMu.Unlock()
	for _, w := range watches {
		w.cancel()
		w.factory.Shutdown()
	}
}

// applyCluster replaces the scenario in cluster mode: it watches the namespaces of the new apps
// and syncs every namespace of the old and new apps. The caller holds applyMu.
func (s *Simulator) applyCluster(sc Scenario) error {
	namespaces := namespacesOf(s.scenario)
	s.mu.Lock()
	tickChanged := s.setScenarioLocked(sc)
	s.mu.Unlock()
	s.watchNamespaces(namespacesOf(sc))
	maps.Copy(namespaces, namespacesOf(sc))

	var added, removed int
	for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
		a, r := s.syncNamespaceLocked(ns)
		added += a
		removed += r
	}
	s.tickMaybeChanged(tickChanged)
	targets := s.Targets()
	s.logger.Info().Int("pods", len(targets)).Int("added", added).Int("removed", removed).
		Strs("namespaces", slices.Sorted(maps.Keys(s.cluster.watches))).Msg("scenario applied")
	if err := s.writeTargetsLocked(targets); err != nil {
		return fmt.Errorf("apply scenario: %w", err)
	}
	return nil
}

func namespacesOf(sc Scenario) map[string]bool {
	out := make(map[string]bool, len(sc.Apps))
	for _, a := range sc.Apps {
		out[a.Namespace] = true
	}
	return out
}

// watchNamespaces starts informers for the namespaces in want and stops the others. Informers
// start without waiting for their first list: their events queue the namespace for a sync. The
// caller holds applyMu.
func (s *Simulator) watchNamespaces(want map[string]bool) {
	c := s.cluster
	for ns, w := range c.watches {
		if !want[ns] {
			w.cancel()
			w.factory.Shutdown()
			delete(c.watches, ns)
			s.logger.Info().Str("namespace", ns).Msg("namespace unwatched")
		}
	}
	for ns := range want {
		if c.watches[ns] == nil {
			c.watches[ns] = c.watch(ns)
			s.logger.Info().Str("namespace", ns).Msg("namespace watched")
		}
	}
}

// watch starts the Pod and Service informers of one namespace.
func (c *cluster) watch(ns string) *namespaceWatch {
	factory := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(ns))
	pods := factory.Core().V1().Pods()
	services := factory.Core().V1().Services()
	// Any change may move traffic, so every event syncs the whole namespace; the queue folds
	// a burst of events into one sync.
	enqueue := func(any) { c.queue.Add(ns) }
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}
	// AddEventHandler fails only on a stopped informer, and these have not started.
	_, _ = pods.Informer().AddEventHandler(handler)
	_, _ = services.Informer().AddEventHandler(handler)
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	return &namespaceWatch{
		factory:  factory,
		pods:     pods.Lister(),
		services: services.Lister(),
		ctx:      ctx,
		cancel:   cancel,
	}
}

// waitForCaches waits until the informers have listed the Pods and Services of every watched
// namespace, then syncs them all, so that Targets lists the Ready pods.
func (s *Simulator) waitForCaches(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, cacheSyncTimeout)
	defer cancel()
	s.applyMu.Lock()
	watches := maps.Clone(s.cluster.watches)
	s.applyMu.Unlock()
	for _, ns := range slices.Sorted(maps.Keys(watches)) {
		w := watches[ns]
		wctx, wcancel := context.WithCancel(ctx)
		stop := context.AfterFunc(w.ctx, wcancel) // a dropped watch never syncs
		err := w.factory.WaitForCacheSyncWithContext(wctx).AsError()
		stop()
		wcancel()
		if err != nil && w.ctx.Err() == nil {
			return fmt.Errorf("list pods and services in namespace %q: %w", ns, err)
		}
	}

	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	for _, ns := range slices.Sorted(maps.Keys(watches)) {
		s.syncNamespaceLocked(ns)
	}
	if err := s.writeTargetsLocked(s.Targets()); err != nil {
		return err
	}
	return nil
}

// syncNamespace brings the pods of one namespace in step with the cluster, for the worker.
func (s *Simulator) syncNamespace(ns string) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.stopped {
		return
	}
	s.syncNamespaceLocked(ns)
	if err := s.writeTargetsLocked(s.Targets()); err != nil {
		// Nothing to return it to: the next change retries.
		s.logger.Error().Err(err).Msg("targets file not written")
	}
}

// syncNamespaceLocked starts, updates and stops the pods of one namespace to match the cluster
// and the scenario, and returns how many pods it started and stopped. Pods that stay keep their
// counters and take their new rate, error rate, latency and index. The caller holds applyMu.
func (s *Simulator) syncNamespaceLocked(ns string) (added, removed int) {
	c := s.cluster
	var apps []App
	for _, a := range s.scenario.Apps {
		if a.Namespace == ns {
			apps = append(apps, a)
		}
	}
	var want []clusterPod
	if w := c.watches[ns]; w != nil && len(apps) > 0 {
		// Listers list from the cache and never fail.
		pods, _ := w.pods.List(labels.Everything())
		services, _ := w.services.List(labels.Everything())
		want = planCluster(apps, pods, services)
	}
	wantByID := make(map[string]clusterPod, len(want))
	for _, cp := range want {
		wantByID[cp.id] = cp
	}

	var stopped []*pod
	s.mu.Lock()
	for id, p := range s.pods {
		if p.key.namespace != ns {
			continue
		}
		if cp, ok := wantByID[id]; ok && cp.sameProcess(p) {
			p.spec = cp.spec
			continue
		}
		stopped = append(stopped, p)
		delete(s.pods, id)
	}
	s.mu.Unlock()
	// Stop before listening, so that a new pod can take an address a gone one frees.
	slices.SortFunc(stopped, comparePods)
	s.stopPods(stopped)

	var started []*pod
	for _, cp := range want {
		if _, ok := s.pods[cp.id]; ok {
			continue
		}
		if p := s.startClusterPod(ns, cp); p != nil {
			started = append(started, p)
		}
	}
	s.mu.Lock()
	for _, p := range started {
		s.pods[p.id] = p
	}
	s.mu.Unlock()
	for _, p := range started {
		s.serve(p)
	}

	for id, f := range c.failed {
		if _, ok := wantByID[id]; f.namespace == ns && !ok {
			delete(c.failed, id)
		}
	}
	if len(stopped) > 0 {
		// A freed address may be the one a failed pod of another namespace waits for.
		for _, f := range c.failed {
			if f.namespace != ns {
				c.queue.Add(f.namespace)
			}
		}
	}
	s.targetsDirty = s.targetsDirty || len(started) > 0 || len(stopped) > 0
	s.logger.Debug().Str("namespace", ns).Int("pods", len(want)).Int("started", len(started)).
		Int("stopped", len(stopped)).Msg("namespace synced")
	return len(started), len(stopped)
}

// startClusterPod listens on a cluster pod's address. It logs a failure, such as two pods with
// the same IP and port or a pod IP that is not local, once per pod and address, and returns nil.
func (s *Simulator) startClusterPod(ns string, cp clusterPod) *pod {
	c := s.cluster
	log := s.logger.With().Str("namespace", ns).Str("pod", cp.name).Str("address", cp.address).Logger()
	ln, err := net.Listen("tcp", cp.address)
	if err == nil {
		var p *pod
		p, err = newPod(cp.spec, podIdentity{
			id:           cp.id,
			name:         cp.name,
			templateHash: cp.templateHash,
			address:      cp.address,
			path:         cp.path,
			seed:         s.scenario.Seed,
			stream:       hash64(ns + "/" + cp.name),
		}, ln)
		if err == nil {
			delete(c.failed, cp.id)
			return p
		}
		_ = ln.Close() // never served
	}
	f := listenFailure{namespace: ns, address: cp.address}
	if c.failed[cp.id] != f {
		log.Error().Err(err).Msg("pod not simulated")
	}
	c.failed[cp.id] = f
	return nil
}
