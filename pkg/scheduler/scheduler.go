// Package scheduler assigns pending pods to nodes the way kube-scheduler's
// default profile does, with its filters, scores, queue and texts, small:
// informer caches kept incrementally (no per-pod lists), one decision loop,
// bindings through the pods/binding subresource in their own goroutines.
package scheduler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// DefaultSchedulerName is the name pods ask for (spec.schedulerName) and the
// reportingController of the scheduler's events.
const DefaultSchedulerName = v1.DefaultSchedulerName

// Options tune the scheduler; zero values are upstream's defaults.
type Options struct {
	// SchedulerName: pods with this spec.schedulerName are scheduled ("default-scheduler").
	SchedulerName string
	// InitialBackoff and MaxBackoff bound the retry back-off (1s, 10s).
	InitialBackoff, MaxBackoff time.Duration
	// MaxUnschedulableDuration: an unschedulable pod is retried at least this often (5m).
	MaxUnschedulableDuration time.Duration
	// Recorder replaces the events.k8s.io recorder Run creates (tests).
	Recorder events.EventRecorder
	// Rand breaks ties between equally scored nodes (tests seed it).
	Rand *rand.Rand
	// BindConcurrency bounds the bindings in flight (64). Unbounded, a burst
	// of pods opens more streams than one HTTP/2 connection carries, and
	// each extra connection costs a TLS handshake on both sides.
	BindConcurrency int
}

// Scheduler binds pending pods to nodes.
type Scheduler struct {
	client    kubernetes.Interface
	factory   informers.SharedInformerFactory
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	clock     clock.WithTicker
	opts      Options

	cache    *nodeCache
	queue    *queue
	recorder events.EventRecorder
	rnd      *rand.Rand

	// acts counts bindings and status patches in flight; binding holds a
	// token from bindSlots while it calls the API.
	acts      sync.WaitGroup
	bindSlots chan struct{}
}

// New returns a scheduler that watches pods and nodes through factory
// (share it with the controller manager to cache them once). Run starts it.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, clk clock.WithTicker, opts Options) (*Scheduler, error) {
	if opts.SchedulerName == "" {
		opts.SchedulerName = DefaultSchedulerName
	}
	if opts.InitialBackoff == 0 {
		opts.InitialBackoff = DefaultInitialBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxUnschedulableDuration == 0 {
		opts.MaxUnschedulableDuration = DefaultMaxUnschedulableDuration
	}
	if opts.BindConcurrency == 0 {
		opts.BindConcurrency = 64
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	s := &Scheduler{
		client: client, factory: factory, clock: clk, opts: opts,
		cache: newNodeCache(), queue: newQueue(clk, opts.InitialBackoff, opts.MaxBackoff, opts.MaxUnschedulableDuration),
		recorder: opts.Recorder, rnd: rnd, bindSlots: make(chan struct{}, opts.BindConcurrency),
	}
	pods := factory.Core().V1().Pods()
	nodes := factory.Core().V1().Nodes()
	s.podLister = pods.Lister()
	ph, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.onPodAdd,
		UpdateFunc: s.onPodUpdate,
		DeleteFunc: s.onPodDelete,
	})
	if err != nil {
		return nil, fmt.Errorf("scheduler: pod informer: %w", err)
	}
	nh, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.onNodeAdd,
		UpdateFunc: s.onNodeUpdate,
		DeleteFunc: s.onNodeDelete,
	})
	if err != nil {
		return nil, fmt.Errorf("scheduler: node informer: %w", err)
	}
	s.synced = []cache.InformerSynced{ph.HasSynced, nh.HasSynced}
	return s, nil
}

// Run schedules pods until ctx is done; it starts the informer factory and
// the event recorder, and returns once in-flight bindings have finished.
func (s *Scheduler) Run(ctx context.Context) {
	logger := klog.FromContext(ctx)
	if s.recorder == nil {
		// Like kube-scheduler: events.k8s.io/v1 when the server serves it,
		// core/v1 events otherwise; reportingController default-scheduler.
		b := events.NewEventBroadcasterAdapterWithContext(ctx, s.client)
		b.StartRecordingToSink(ctx.Done())
		defer b.Shutdown()
		s.recorder = b.NewRecorder(s.opts.SchedulerName)
	}
	s.factory.Start(ctx.Done())
	if !cache.WaitForNamedCacheSyncWithContext(ctx, s.synced...) {
		return
	}
	logger.Info("Starting scheduler", "schedulerName", s.opts.SchedulerName)

	go s.every(ctx, backoffFlushPeriod, s.queue.flushBackoff)
	go s.every(ctx, unschedulableFlushPeriod, s.queue.flushUnschedulable)
	go func() {
		<-ctx.Done()
		s.queue.Close()
	}()
	for s.scheduleOne(ctx) {
	}
	s.acts.Wait()
}

func (s *Scheduler) every(ctx context.Context, d time.Duration, f func()) {
	t := s.clock.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			f()
		}
	}
}
