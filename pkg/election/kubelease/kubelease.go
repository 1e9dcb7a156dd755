// Package kubelease keeps the election's Lease record in a coordination/v1
// Lease: the mapping (Fill, Record) is pure, so the simulator stores the same
// objects the agent writes, and Store executes the election's Lease commands
// against the API server with compare-and-swap on resourceVersion.
package kubelease

import (
	"context"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/licenseha/licenseha/pkg/election"
)

// Annotations of the Lease that carry the protocol's record beside
// holderIdentity. The operator reads the epoch and the reason.
const (
	AnnotationEpoch        = "licenseha.io/epoch"
	AnnotationIncarnation  = "licenseha.io/incarnation"
	AnnotationHandoffTo    = "licenseha.io/handoff-to"
	AnnotationReason       = "licenseha.io/reason"
	AnnotationAfterRelease = "licenseha.io/after-release"
	// AnnotationServeFor (pairs) is how long the holder may serve on this
	// write alone, in milliseconds; absent when it serves on grants only.
	AnnotationServeFor = "licenseha.io/serve-for-ms"
)

// FieldManager is the field manager of the agents' Lease writes.
const FieldManager = "licenseha-agent"

// Mapping names the group whose Lease this is: holderIdentity is the
// holder's pod, <group>-<member>, so `kubectl get lease` shows which pod
// serves.
type Mapping struct {
	Group string
	// DurationSeconds is written for people reading the Lease; the
	// protocol's timing comes from the peer timeout, not from it.
	DurationSeconds int32
}

// Fill writes a protocol record into a Lease object; now stamps renewTime
// (and acquireTime when the epoch changes).
func (m Mapping) Fill(l *coordinationv1.Lease, r election.LeaseRecord, now time.Time) {
	at := metav1.NewMicroTime(now)
	prevEpoch, _ := strconv.ParseInt(l.Annotations[AnnotationEpoch], 10, 64)
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[AnnotationEpoch] = strconv.FormatInt(r.Epoch, 10)
	l.Annotations[AnnotationIncarnation] = strconv.FormatUint(r.HolderIncarnation, 10)
	l.Annotations[AnnotationHandoffTo] = string(r.HandoffTo)
	l.Annotations[AnnotationReason] = string(r.Reason)
	l.Annotations[AnnotationAfterRelease] = strconv.FormatBool(r.AfterRelease)
	if r.ServeFor > 0 {
		l.Annotations[AnnotationServeFor] = strconv.FormatInt(r.ServeFor.Milliseconds(), 10)
	} else {
		delete(l.Annotations, AnnotationServeFor)
	}
	if r.Holder == "" {
		l.Spec.HolderIdentity = nil
	} else {
		l.Spec.HolderIdentity = ptr.To(m.Group + "-" + string(r.Holder))
	}
	if m.DurationSeconds > 0 {
		l.Spec.LeaseDurationSeconds = ptr.To(m.DurationSeconds)
	}
	l.Spec.RenewTime = &at
	if r.Epoch != prevEpoch {
		l.Spec.AcquireTime = &at
		l.Spec.LeaseTransitions = ptr.To(int32(min(r.Epoch, 1<<31-1)))
	}
}

// Record reads the protocol record out of a Lease object. A holder that is
// not one of the group's pods reads as a member of that odd name, which no
// configuration contains: the members then treat it as a holder that is not
// a candidate.
func (m Mapping) Record(l *coordinationv1.Lease) election.LeaseRecord {
	r := election.LeaseRecord{Version: l.ResourceVersion}
	if h := l.Spec.HolderIdentity; h != nil && *h != "" {
		if member, ok := strings.CutPrefix(*h, m.Group+"-"); ok {
			r.Holder = election.MemberID(member)
		} else {
			r.Holder = election.MemberID("/" + *h)
		}
	}
	if e, ok := l.Annotations[AnnotationEpoch]; ok {
		r.Epoch, _ = strconv.ParseInt(e, 10, 64)
	} else if t := l.Spec.LeaseTransitions; t != nil && *t > 0 {
		// A Lease written by client-go leader election (a backup pair's
		// agent before release 0.3), whose epochs were leaseTransitions+1:
		// the next acquisition continues above them.
		r.Epoch = int64(*t) + 1
	}
	r.HolderIncarnation, _ = strconv.ParseUint(l.Annotations[AnnotationIncarnation], 10, 64)
	r.HandoffTo = election.MemberID(l.Annotations[AnnotationHandoffTo])
	r.Reason = election.Reason(l.Annotations[AnnotationReason])
	r.AfterRelease, _ = strconv.ParseBool(l.Annotations[AnnotationAfterRelease])
	if ms, err := strconv.ParseInt(l.Annotations[AnnotationServeFor], 10, 64); err == nil && ms > 0 {
		r.ServeFor = time.Duration(ms) * time.Millisecond
	}
	return r
}

// Store is the Lease <name> in namespace, an election.LeaseStore.
type Store struct {
	Mapping
	Client    kubernetes.Interface
	Namespace string
	Name      string
	// Timeout bounds each API call (default 2 s).
	Timeout time.Duration

	// last is the Lease as last read or written; an update whose expected
	// version matches it needs no extra read. The runner issues one command
	// at a time, so no lock is needed.
	last *coordinationv1.Lease
}

var _ election.LeaseStore = (*Store)(nil)

func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	t := s.Timeout
	if t == 0 {
		t = 2 * time.Second
	}
	return context.WithTimeout(ctx, t)
}

// Get implements election.LeaseStore.
func (s *Store) Get(ctx context.Context) (election.LeaseRecord, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	l, err := s.Client.CoordinationV1().Leases(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	return s.result(l, err)
}

// Create implements election.LeaseStore.
func (s *Store) Create(ctx context.Context, rec election.LeaseRecord) (election.LeaseRecord, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace}}
	s.Fill(l, rec, time.Now())
	got, err := s.Client.CoordinationV1().Leases(s.Namespace).Create(ctx, l, metav1.CreateOptions{FieldManager: FieldManager})
	return s.result(got, err)
}

// Update implements election.LeaseStore: a compare-and-swap on
// rec.Version.
func (s *Store) Update(ctx context.Context, rec election.LeaseRecord) (election.LeaseRecord, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	leases := s.Client.CoordinationV1().Leases(s.Namespace)
	var cur *coordinationv1.Lease
	if s.last != nil && s.last.ResourceVersion == rec.Version {
		cur = s.last.DeepCopy()
	} else {
		got, err := leases.Get(ctx, s.Name, metav1.GetOptions{})
		if err != nil {
			return s.result(nil, err)
		}
		if got.ResourceVersion != rec.Version {
			s.last = got
			return s.Record(got), election.ErrConflict
		}
		cur = got
	}
	s.Fill(cur, rec, time.Now())
	got, err := leases.Update(ctx, cur, metav1.UpdateOptions{FieldManager: FieldManager})
	return s.result(got, err)
}

// result classifies an API answer: NotFound and Conflict/AlreadyExists map
// onto the election's errors; anything else (timeouts, 5xx, RBAC refusals)
// is "unreachable", and a write may or may not have happened.
func (s *Store) result(l *coordinationv1.Lease, err error) (election.LeaseRecord, error) {
	s.last = nil
	switch {
	case err == nil:
		s.last = l
		return s.Record(l), nil
	case apierrors.IsNotFound(err):
		return election.LeaseRecord{}, election.ErrNotFound
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		return election.LeaseRecord{}, election.ErrConflict
	}
	return election.LeaseRecord{}, err
}
