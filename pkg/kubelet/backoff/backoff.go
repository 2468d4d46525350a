// Package backoff is the kubelet's restart back-off table: one tracker for
// container restarts (CrashLoopBackOff) and one for image pulls
// (ImagePullBackOff), both on client-go's flowcontrol.Backoff with the
// injected clock, with upstream kubelet's constants and reset rule.
package backoff

import (
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"
)

const (
	// CrashLoopInitial is the first restart delay after the first retry.
	CrashLoopInitial = 10 * time.Second
	// CrashLoopMax caps the restart delay.
	CrashLoopMax = 300 * time.Second
	// CrashLoopReset: a container that ran this long since its last
	// back-off step starts over at CrashLoopInitial (upstream's
	// HasExpiredFunc on the kubelet's crashLoopBackOff).
	CrashLoopReset = 600 * time.Second

	ImagePullInitial = 10 * time.Second
	ImagePullMax     = 300 * time.Second
)

// Tracker remembers, per key, the current delay and when it last grew.
type Tracker struct {
	b *flowcontrol.Backoff
}

// NewCrashLoop returns the container restart tracker.
func NewCrashLoop(c clock.Clock) *Tracker {
	b := flowcontrol.NewFakeBackOff(CrashLoopInitial, CrashLoopMax, c)
	b.HasExpiredFunc = func(eventTime, lastUpdate time.Time, _ time.Duration) bool {
		return eventTime.Sub(lastUpdate) > CrashLoopReset
	}
	return &Tracker{b: b}
}

// NewImagePull returns the image pull tracker (entries expire after twice
// the maximum, client-go's default).
func NewImagePull(c clock.Clock) *Tracker {
	return &Tracker{b: flowcontrol.NewFakeBackOff(ImagePullInitial, ImagePullMax, c)}
}

// Key identifies one container of one pod; a change of image (or any field
// that restarts the container) starts a fresh back-off, as upstream.
func Key(pod *v1.Pod, c *v1.Container) string {
	return strings.Join([]string{pod.Name, pod.Namespace, string(pod.UID), c.Name, c.Image}, "_")
}

// ImageKey identifies an image pull of one pod.
func ImageKey(pod *v1.Pod, image string) string {
	return fmt.Sprintf("%s_%s", pod.UID, image)
}

// Decision of a restart check.
type Decision struct {
	// InBackOff: the restart must wait until Until.
	InBackOff bool
	// Delay is the current back-off step (the "back-off 20s" of the message).
	Delay time.Duration
	Until time.Time
}

// Check decides whether the container whose latest instance finished at
// finishedAt may be restarted now (upstream's doBackOff). When it may, the
// entry moves to its next step, so the following failure waits longer; the
// first restart of a container is therefore immediate.
func (t *Tracker) Check(key string, finishedAt time.Time) Decision {
	if t.b.IsInBackOffSince(key, finishedAt) {
		d := t.b.Get(key)
		return Decision{InBackOff: true, Delay: d, Until: finishedAt.Add(d)}
	}
	t.b.Next(key, finishedAt)
	return Decision{Delay: t.b.Get(key)}
}

// InBackOffSinceUpdate: the key failed less than its delay ago (image pulls).
func (t *Tracker) InBackOffSinceUpdate(key string, now time.Time) bool {
	return t.b.IsInBackOffSinceUpdate(key, now)
}

// Next records a failure of key (image pulls).
func (t *Tracker) Next(key string, now time.Time) { t.b.Next(key, now) }

// Get returns the current delay of key (0 if unknown).
func (t *Tracker) Get(key string) time.Duration { return t.b.Get(key) }

// Reset forgets key.
func (t *Tracker) Reset(key string) { t.b.Reset(key) }

// GC drops entries whose reset time has passed.
func (t *Tracker) GC() { t.b.GC() }
