package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/informers"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// controller is the leader's machinery: Deployment informers, a queue of policy keys, and one
// runner per canary in progress. sample-controller's shape: handlers only enqueue; workers
// read from the listers and start or stop runners.
type controller struct {
	d       *Daemon
	queue   workqueue.TypedRateLimitingInterface[string]
	listers map[string]appslisters.DeploymentLister // by namespace; "" for all
	synced  []cache.InformerSynced

	mu      sync.Mutex
	runners map[string]*runner
	proms   map[string]*metrics.Batcher
	wg      sync.WaitGroup
}

// runner is one canary being driven.
type runner struct {
	policy *policies.Policy
	cancel context.CancelFunc
	done   chan struct{}
}

func newController(d *Daemon) *controller {
	return &controller{
		d:       d,
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		listers: map[string]appslisters.DeploymentLister{},
		runners: map[string]*runner{},
		proms:   map[string]*metrics.Batcher{},
	}
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
		c.synced = append(c.synced, inf.Informer().HasSynced)
		factories = append(factories, f)
	}
	for _, f := range factories {
		f.Start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.stop()
		return
	}
	for _, p := range c.d.store.All() {
		c.queue.Add(Key(p))
	}
	var workers sync.WaitGroup
	for range 2 {
		workers.Go(func() {
			for c.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	workers.Wait()
	c.stop()
	for _, f := range factories {
		f.Shutdown()
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
	for _, key := range c.d.store.For(d.Namespace, d.Name) {
		c.queue.Add(key)
	}
}

func (c *controller) next(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx, key); err != nil {
		c.d.metrics.tickErrors.WithLabelValues("kubernetes").Inc()
		c.d.logger.Warn().Err(err).Str("policy", key).Msg("sync failed; retrying")
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// sync starts, restarts or stops the runner of one policy.
func (c *controller) sync(ctx context.Context, key string) error {
	p, ok := c.d.store.Get(key)
	c.mu.Lock()
	r := c.runners[key]
	c.mu.Unlock()
	if r != nil {
		if ok && r.policy == p {
			return nil // running with this very policy
		}
		// The policy changed or went away: stop; its progress is on the Deployment.
		r.cancel()
		<-r.done
	}
	if !ok {
		return nil
	}
	start, err := c.shouldRun(p)
	if err != nil || !start {
		return err
	}
	return c.start(ctx, key, p)
}

// shouldRun says whether a policy's canary is there and not yet ended: the canary Deployment
// scaled above 0 (scale, shift, bluegreen) or rolling out the canary's version (rollout), and
// no final outcome recorded for this canary version.
func (c *controller) shouldRun(p *policies.Policy) (bool, error) {
	t := p.Spec.Target
	name := t.Canary.Deployment
	if name == "" {
		name = t.Baseline.Deployment
	}
	lister, ok := c.listers[t.Namespace]
	if !ok {
		lister, ok = c.listers[""]
	}
	if !ok {
		return false, nil // not a namespace this daemon watches
	}
	d, err := lister.Deployments(t.Namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("deployment %s/%s: %w", t.Namespace, name, err)
	}
	prog, err := analyzer.ParseProgress(d.Annotations[actuator.AnnotationProgress])
	if err != nil {
		return false, err
	}
	if prog != nil && prog.Canary == t.Canary.Version && prog.Phase.Final() {
		return false, nil
	}
	if p.Spec.Strategy.Type == policies.StrategyRollout {
		return d.Spec.Template.Labels[t.Labels.Version] == t.Canary.Version, nil
	}
	return d.Spec.Replicas != nil && *d.Spec.Replicas > 0, nil
}

func (c *controller) start(ctx context.Context, key string, p *policies.Policy) error {
	logger := c.d.logger.With().Str("policy", key).Logger()
	var source analyzer.Observer
	if p.Spec.Source == policies.SourcePods {
		// No Prometheus: the daemon scrapes the canary's and the baseline's pods itself.
		source = metrics.NewPods(c.d.client, p.Spec.Pods, logger)
	} else {
		prom, err := c.prometheus(p)
		if err != nil {
			return err
		}
		source = prom
	}
	rel, err := actuator.NewRelease(c.d.client, p, logger)
	if err != nil {
		return err
	}
	canary := &analyzer.Canary{
		Policy: p, Release: rel, Analyzer: analyzer.New(source, logger), Logger: logger,
		OnTick: func(t analyzer.Tick) { c.tick(key, logger, t) },
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &runner{policy: p, cancel: cancel, done: make(chan struct{})}
	c.mu.Lock()
	c.runners[key] = r
	c.mu.Unlock()
	c.d.metrics.inProgress.Inc()
	logger.Info().Str("canary", p.Spec.Target.Canary.Version).Msg("canary driven")
	c.wg.Go(func() {
		defer close(r.done)
		defer cancel()
		rep, err := canary.Run(rctx, time.Now().Add(24*time.Hour))
		c.mu.Lock()
		if c.runners[key] == r {
			delete(c.runners, key)
		}
		c.mu.Unlock()
		c.d.metrics.inProgress.Dec()
		switch {
		case errors.Is(err, context.Canceled):
			logger.Info().Msg("canary left to resume")
		case err != nil:
			logger.Warn().Err(err).Msg("canary interrupted by an API error; retrying")
			c.d.metrics.tickErrors.WithLabelValues("kubernetes").Inc()
			c.queue.AddRateLimited(key)
		default:
			c.d.metrics.outcomes.WithLabelValues(key, string(rep.Outcome)).Inc()
			logger.Info().Str("outcome", string(rep.Outcome)).Str("reason", rep.Reason).Msg("canary ended")
			if rep.Outcome == analyzer.OutcomeUnavailable {
				c.queue.AddRateLimited(key) // keep holding until Prometheus answers
			}
		}
	})
	return nil
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
func (c *controller) prometheus(p *policies.Policy) (*metrics.Batcher, error) {
	url := p.Spec.Prometheus.URL
	if c.d.opts.PrometheusURL != "" {
		url = c.d.opts.PrometheusURL
	}
	if url == "" {
		return nil, fmt.Errorf("policy %s names no Prometheus URL", Key(p))
	}
	httpCfg, err := yamlString(p.Spec.Prometheus.HTTP)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s|%s|%s", url, p.Spec.Prometheus.Timeout, httpCfg)
	c.mu.Lock()
	defer c.mu.Unlock()
	if prom, ok := c.proms[id]; ok {
		return prom, nil
	}
	prom, err := metrics.NewPrometheus(url, p.Spec.Prometheus, c.d.logger)
	if err != nil {
		return nil, err
	}
	prom.OnQuery = c.d.metrics.query
	b := metrics.NewBatcher(prom, batchDelay, c.d.logger)
	c.proms[id] = b
	return b, nil
}

// stop cancels every runner and waits for them: each leaves its canary resumable.
func (c *controller) stop() {
	c.mu.Lock()
	for _, r := range c.runners {
		r.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// yamlString renders a configuration value, to tell equal settings from different ones.
func yamlString(v any) (string, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("prometheus http settings: %w", err)
	}
	return string(b), nil
}
