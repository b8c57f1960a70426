package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/metrics/promapi"
	"github.com/coalmine/coalmine/metrics/scrape"
	"github.com/coalmine/coalmine/policies"
)

// controller is the leader's machinery, sample-controller's shape: informers feed a workqueue
// of policy keys; a worker takes a key and runs one tick of its canary (Canary.Step) under the
// tick's time budget, then puts the key back with AddAfter for the next. Reads come from the
// informers' caches; writes go through the clientset.
type controller struct {
	d       *Daemon
	queue   workqueue.TypedRateLimitingInterface[string]
	listers map[string]appslisters.DeploymentLister // by namespace; "" for all
	caches  map[string]actuator.Listers             // by namespace; "" for all
	synced  []cache.InformerSynced

	// policies is where policies come from: the directory's store, or objects.
	policies policySource
	// objects, policyListers and status are set when the policies are CanaryPolicy objects.
	objects       *objectStore
	policyListers map[string]cache.GenericLister // by namespace; "" for all
	status        *actuator.PolicyStatus

	mu       sync.Mutex
	canaries map[string]*driven
	proms    map[string]*promapi.Batcher
}

// driven is one canary being driven: its policy and its engine, which keeps the evidence and
// the counters' last readings between ticks.
type driven struct {
	policy  *policies.Policy
	engine  *analyzer.Canary
	release *actuator.Release
	logger  zerolog.Logger
}

func newController(d *Daemon) *controller {
	c := &controller{
		d:        d,
		queue:    workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		listers:  map[string]appslisters.DeploymentLister{},
		caches:   map[string]actuator.Listers{},
		canaries: map[string]*driven{},
		proms:    map[string]*promapi.Batcher{},
		policies: d.store,
	}
	if d.store == nil {
		c.objects = newObjectStore(admission(d.opts), d.logger)
		c.policies = c.objects
		c.policyListers = map[string]cache.GenericLister{}
		c.status = actuator.NewPolicyStatus(d.dyn, d.client)
	}
	return c
}

func (c *controller) run(ctx context.Context) {
	namespaces := c.d.opts.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	var factories []informers.SharedInformerFactory
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(c.d.client, 10*time.Minute, informers.WithNamespace(ns))
		inf := f.Apps().V1().Deployments()
		_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueFor,
			UpdateFunc: func(_, obj any) { c.enqueueFor(obj) },
			DeleteFunc: c.enqueueFor,
		})
		c.listers[ns] = inf.Lister()
		// Every read a canary's tick makes comes from these caches; writes go to the API server.
		rs, pods, svcs := f.Apps().V1().ReplicaSets(), f.Core().V1().Pods(), f.Core().V1().Services()
		c.caches[ns] = actuator.Listers{
			DeploymentLister: inf.Lister(), ReplicaSetLister: rs.Lister(),
			PodLister: pods.Lister(), ServiceLister: svcs.Lister(),
		}
		c.synced = append(c.synced, inf.Informer().HasSynced, rs.Informer().HasSynced, pods.Informer().HasSynced, svcs.Informer().HasSynced)
		factories = append(factories, f)
	}
	var objects []dynamicinformer.DynamicSharedInformerFactory
	if c.objects != nil {
		objects = c.watchPolicies(namespaces)
	}
	for _, f := range factories {
		f.Start(ctx.Done())
	}
	for _, f := range objects {
		f.Start(ctx.Done())
	}
	shutdown := func() {
		for _, f := range factories {
			f.Shutdown()
		}
		for _, f := range objects {
			f.Shutdown()
		}
	}
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		shutdown()
		return
	}
	for _, p := range c.policies.All() {
		c.queue.Add(Key(p))
	}
	for _, l := range c.policyListers {
		// Refused objects too: their status says why.
		all, _ := l.List(labels.Everything())
		for _, o := range all {
			if u, ok := o.(*unstructured.Unstructured); ok {
				c.queue.Add(objectKey(u))
			}
		}
	}
	var workers sync.WaitGroup
	for range max(1, c.d.opts.Workers) {
		workers.Go(func() {
			for c.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	workers.Wait()
	c.mu.Lock()
	c.d.metrics.inProgress.Sub(float64(len(c.canaries)))
	c.canaries = map[string]*driven{}
	c.mu.Unlock()
	shutdown()
}

// watchPolicies starts watching the CanaryPolicy objects of the namespaces ("" for all): each
// new generation is loaded into the object store and its key queued.
func (c *controller) watchPolicies(namespaces []string) []dynamicinformer.DynamicSharedInformerFactory {
	var factories []dynamicinformer.DynamicSharedInformerFactory
	for _, ns := range namespaces {
		f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.d.dyn, 10*time.Minute, ns, nil)
		inf := f.ForResource(policyResource)
		_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    c.policyChanged,
			UpdateFunc: func(_, obj any) { c.policyChanged(obj) },
			DeleteFunc: func(obj any) {
				if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = t.Obj
				}
				if o, ok := obj.(*unstructured.Unstructured); ok {
					c.objects.remove(objectKey(o))
					c.queue.Add(objectKey(o))
				}
			},
		})
		c.policyListers[ns] = inf.Lister()
		c.synced = append(c.synced, inf.Informer().HasSynced)
		factories = append(factories, f)
	}
	return factories
}

// policyChanged loads an object's new generation and queues its key; a status write, which
// changes no generation, queues nothing. A refused generation of a canary being driven is
// reported by its next tick, which keeps its schedule: the policy in force is the same.
func (c *controller) policyChanged(obj any) {
	o, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	key := objectKey(o)
	inForce, refused := c.objects.set(o)
	c.mu.Lock()
	_, driving := c.canaries[key]
	c.mu.Unlock()
	if inForce || (refused && !driving) {
		c.queue.Add(key)
	}
}

// enqueueFor queues the policies that name a Deployment.
func (c *controller) enqueueFor(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return
	}
	for _, key := range c.policies.For(d.Namespace, d.Name) {
		// A canary being driven ticks on its own schedule; an event only starts one.
		c.mu.Lock()
		_, driving := c.canaries[key]
		c.mu.Unlock()
		if !driving {
			c.queue.Add(key)
		}
	}
}

func (c *controller) next(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	next, err := c.sync(ctx, key)
	switch {
	case ctx.Err() != nil:
		// Stopping: every canary is resumable from its record.
	case err != nil:
		c.d.metrics.tickErrors.WithLabelValues("kubernetes").Inc()
		c.d.logger.Warn().Err(err).Str("policy", key).Msg("sync failed; retrying")
		c.queue.AddRateLimited(key)
	case next > 0:
		c.queue.Forget(key)
		c.queue.AddAfter(key, next)
	default:
		c.queue.Forget(key)
	}
	return true
}

// sync starts, ticks or stops the canary of one policy, and says when its next tick is due
// (0: none).
func (c *controller) sync(ctx context.Context, key string) (next time.Duration, err error) {
	defer func() {
		// A panic in one canary is that canary's problem, never the daemon's.
		if r := recover(); r != nil {
			err = fmt.Errorf("policy %s: panic: %v", key, r)
		}
	}()
	p, ok := c.policies.Get(key)
	c.mu.Lock()
	dc := c.canaries[key]
	if dc != nil && (!ok || dc.policy != p) {
		// The policy changed or went away: its progress is on the Deployment.
		delete(c.canaries, key)
		c.d.metrics.inProgress.Dec()
		dc.logger.Info().Msg("policy changed; canary left to resume")
		dc = nil
	}
	c.mu.Unlock()
	if !ok {
		c.report(ctx, key, nil, sighting{}) // an object refused with nothing in force
		return 0, nil
	}
	if dc == nil {
		start, seen, err := c.shouldRun(ctx, p)
		if err != nil {
			return 0, err
		}
		if !start {
			c.park(ctx, key, p)
			c.report(ctx, key, p, seen)
			return 0, nil
		}
		if dc, err = c.start(key, p); err != nil {
			return 0, err
		}
	}
	st, err := dc.engine.Step(ctx, time.Now().Add(24*time.Hour))
	if st.Tick != nil {
		c.tick(key, dc.logger, *st.Tick)
	}
	// The policy in force is the engine's: the versions read from the Deployments.
	c.d.notifier.Offer(ctx, dc.engine.Policy, dc.engine.Record(), dc.release)
	if err != nil {
		return 0, err
	}
	c.report(ctx, key, p, stepped(dc.engine.Record(), st))
	switch st.Outcome {
	case "":
		return st.Next, nil
	case analyzer.OutcomeWaiting:
		// Past its time, waiting for a person: it goes on when they answer.
		return time.Duration(p.Spec.Analysis.Interval), nil
	}
	c.mu.Lock()
	if c.canaries[key] == dc {
		delete(c.canaries, key)
		c.d.metrics.inProgress.Dec()
	}
	c.mu.Unlock()
	c.d.metrics.outcomes.WithLabelValues(key, string(st.Outcome)).Inc()
	dc.logger.Info().Str("outcome", string(st.Outcome)).Str("reason", st.Reason).Msg("canary ended")
	if st.Outcome == analyzer.OutcomeUnavailable {
		return time.Duration(p.Spec.Analysis.Interval), nil // keep holding until the metrics answer
	}
	return 0, nil
}

// shouldRun says whether a policy's canary is there and not yet ended. With versions pinned:
// the canary Deployment scaled above 0 (scale, shift, bluegreen) or rolling out the canary's
// version (rollout). Without: the Deployments running two versions (see actuator.ReadVersions).
// Either way, no final outcome recorded for this canary (its version and pod template), unless
// a person asked to retry it. When not, seen says what there is: no canary yet (Pending), or the
// canary's end as recorded.
func (c *controller) shouldRun(ctx context.Context, p *policies.Policy) (start bool, seen sighting, err error) {
	t := p.Spec.Target
	name := t.Canary.Deployment
	if name == "" {
		name = t.Baseline.Deployment
	}
	pending := sighting{phase: policies.PhasePending, reason: "NoCanary"}
	cached, ok := c.cacheFor(t.Namespace)
	if !ok {
		return false, sighting{}, nil // not a namespace this daemon watches
	}
	d, err := cached.Deployment(ctx, t.Namespace, name)
	if apierrors.IsNotFound(err) {
		pending.message = fmt.Sprintf("waiting for Deployment %s/%s", t.Namespace, name)
		return false, pending, nil
	}
	if err != nil {
		return false, sighting{}, fmt.Errorf("deployment %s/%s: %w", t.Namespace, name, err)
	}
	v, err := actuator.ReadVersions(ctx, cached, p)
	if apierrors.IsNotFound(errors.Unwrap(err)) {
		pending.message = err.Error()
		return false, pending, nil
	}
	if err != nil {
		return false, sighting{}, err
	}
	pending.canary, pending.baseline = v.Canary, v.Baseline
	prog, err := analyzer.DecodeProgress(d.Annotations[actuator.AnnotationProgress], p.WithVersions(v.Baseline, v.Canary))
	if errors.Is(err, analyzer.ErrUntrusted) {
		// The runner refuses it with an Event, once per record, and ends.
		return true, sighting{}, nil
	}
	if err != nil {
		return false, sighting{}, err
	}
	if prog != nil && prog.Canary == v.Canary && prog.Policy == p.Metadata.Name && (prog.Template == "" || prog.Template == v.Template || !p.FollowsReleases()) {
		if prog.Phase.Final() && !analyzer.RetryAsked(prog, d.Annotations[actuator.AnnotationCommands]) {
			return false, c.ended(ctx, p, prog), nil
		}
		if !prog.Phase.Final() {
			return true, sighting{}, nil // resumed from its record
		}
	}
	if prog != nil && prog.Policy == p.Metadata.Name && prog.Phase.Final() && (!v.Releasing() || prog.Undone(v.Baseline, v.Canary)) {
		return false, c.ended(ctx, p, prog), nil // the last canary's end, until the next one
	}
	if !v.Releasing() {
		pending.message = fmt.Sprintf("no canary: the Deployments run %s", v.Canary)
		if v.Canary == "" || v.Baseline == "" {
			pending.message = fmt.Sprintf("no canary: Deployment %s/%s has not run two versions (label %s)", t.Namespace, name, t.Labels.Version)
		}
		return false, pending, nil
	}
	if p.FollowsReleases() {
		return true, pending, nil
	}
	if p.Spec.Strategy.Type == policies.StrategyRollout {
		pending.message = fmt.Sprintf("waiting for Deployment %s/%s to roll out version %s", t.Namespace, name, t.Canary.Version)
		return d.Spec.Template.Labels[t.Labels.Version] == t.Canary.Version, pending, nil
	}
	pending.message = fmt.Sprintf("waiting for Deployment %s/%s to be scaled above 0", t.Namespace, name)
	return d.Spec.Replicas != nil && *d.Spec.Replicas > 0, pending, nil
}

// ended is the sighting of a canary that has ended; its last notices, if a receiver has not had
// them (a daemon restarted as the canary ended), are sent.
func (c *controller) ended(ctx context.Context, p *policies.Policy, rec *analyzer.Progress) sighting {
	if len(p.Spec.Notifications) > 0 {
		if rel, err := actuator.NewRelease(c.d.client, p, c.d.logger); err == nil {
			c.d.notifier.Offer(ctx, p, rec, rel)
		}
	}
	return recorded(rec)
}

// cacheFor is the informers' cache that holds namespace ns; false when this daemon does not
// watch it.
func (c *controller) cacheFor(ns string) (actuator.Listers, bool) {
	if l, ok := c.caches[ns]; ok {
		return l, true
	}
	l, ok := c.caches[""]
	return l, ok
}

// park keeps a rollout's Deployment paused between releases (see actuator.Release.Park), with
// an Event when it pauses it.
func (c *controller) park(ctx context.Context, key string, p *policies.Policy) {
	if p.Spec.Strategy.Type != policies.StrategyRollout || !p.FollowsReleases() {
		return
	}
	rel, err := actuator.NewRelease(c.d.client, p, c.d.logger)
	if err != nil {
		return
	}
	if l, ok := c.cacheFor(p.Spec.Target.Namespace); ok {
		rel.WithCache(l)
	}
	parked, err := rel.Park(ctx)
	if err != nil {
		c.d.logger.Warn().Err(err).Str("policy", key).Msg("deployment not parked")
		return
	}
	if parked {
		msg := fmt.Sprintf("paused Deployment %s/%s between releases: the next change to its pod template starts no pod until coalmine takes the first step", p.Spec.Target.Namespace, rel.RecordOn())
		if err := rel.Event(ctx, fmt.Sprintf("%s/parked/%d", key, time.Now().UnixNano()), false, "DeploymentParked", msg); err != nil {
			c.d.logger.Warn().Err(err).Msg("event not recorded")
		}
		c.d.logger.Info().Str("policy", key).Msg("deployment parked between releases")
	}
}

// start makes the engine of a policy's canary; its first tick reads the record.
func (c *controller) start(key string, p *policies.Policy) (*driven, error) {
	logger := c.d.logger.With().Str("policy", key).Logger()
	var source analyzer.Observer
	if p.Spec.Source == policies.SourcePods {
		// No Prometheus: the daemon scrapes the canary's and the baseline's pods itself.
		source = scrape.NewPods(c.d.client, p.Spec.Pods, logger)
	} else {
		prom, err := c.prometheus(p)
		if err != nil {
			return nil, err
		}
		source = prom
	}
	rel, err := actuator.NewRelease(c.d.client, p, logger)
	if err != nil {
		return nil, err
	}
	if l, ok := c.cacheFor(p.Spec.Target.Namespace); ok {
		rel.WithCache(l)
	}
	dc := &driven{policy: p, logger: logger, release: rel, engine: &analyzer.Canary{
		Policy: p, Release: rel, Analyzer: analyzer.New(source, logger), Logger: logger, Driver: c.d.driver(),
	}}
	c.mu.Lock()
	c.canaries[key] = dc
	c.mu.Unlock()
	c.d.metrics.inProgress.Inc()
	logger.Info().Str("canary", p.Spec.Target.Canary.Version).Msg("canary driven")
	return dc, nil
}

func (c *controller) tick(key string, logger zerolog.Logger, t analyzer.Tick) {
	c.d.metrics.observe(key, t)
	ev := logger.Info().Int("step", t.Step+1).Int("steps", t.Steps).Str("action", t.Action).Str("reason", t.Reason)
	if t.Result != nil {
		ev = ev.Str("verdict", string(t.Result.Verdict))
	}
	ev.Msg("canary tick")
}

// batchDelay is how long a query waits for the other canaries' identical queries (but for the
// namespace) before it goes to Prometheus. Ticks fall on the interval grid, so they come together.
const batchDelay = 500 * time.Millisecond

// prometheus returns a batching client per Prometheus configuration, shared by the policies
// that use it: canaries of one policy across namespaces send one query per metric per tick.
func (c *controller) prometheus(p *policies.Policy) (*promapi.Batcher, error) {
	url := p.Spec.Prometheus.URL
	if c.d.opts.PrometheusURL != "" {
		url = c.d.opts.PrometheusURL
	}
	if url == "" {
		return nil, fmt.Errorf("policy %s names no Prometheus URL", Key(p))
	}
	id, err := clientKey(url, p.Spec.Prometheus)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prom, ok := c.proms[id]; ok {
		return prom, nil
	}
	prom, err := promapi.New(url, p.Spec.Prometheus, c.d.logger)
	if err != nil {
		return nil, err
	}
	prom.OnQuery = c.d.metrics.query
	b := promapi.NewBatcher(prom, batchDelay, c.d.logger)
	c.proms[id] = b
	return b, nil
}
