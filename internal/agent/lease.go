package agent

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

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/election"
)

// Annotations of the Lease <group>-active that carry the protocol's record
// beside holderIdentity. The epoch annotation is also read by the operator.
const (
	annIncarnation  = "licenseha.io/incarnation"
	annHandoffTo    = "licenseha.io/handoff-to"
	annReason       = group.AnnotationLeaseReason
	annAfterRelease = "licenseha.io/after-release"
)

// kubeLeases executes the machine's Lease commands on the coordination/v1
// Lease, with compare-and-swap on resourceVersion. holderIdentity names the
// holder's pod, so `kubectl get lease` shows which pod serves.
type kubeLeases struct {
	cs        kubernetes.Interface
	namespace string
	group     string
	// durationSeconds is written for people reading the Lease; the
	// protocol's timing comes from the peer timeout, not from it.
	durationSeconds int32
	// last is the Lease as last read or written; an update whose expected
	// version matches it needs no extra read. Commands are serialised (the
	// machine has at most one outstanding), so no lock is needed.
	last *coordinationv1.Lease
}

// Do runs one command and reports its outcome; it never blocks for longer
// than apiTimeout.
func (k *kubeLeases) Do(ctx context.Context, cmd election.LeaseCommand) election.LeaseResult {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	res := election.LeaseResult{ID: cmd.ID}
	leases := k.cs.CoordinationV1().Leases(k.namespace)
	name := group.LeaseName(k.group)
	var (
		got *coordinationv1.Lease
		err error
	)
	switch cmd.Op {
	case election.LeaseGet:
		got, err = leases.Get(ctx, name, metav1.GetOptions{})
	case election.LeaseCreate:
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.namespace}}
		k.fill(l, cmd.Record)
		got, err = leases.Create(ctx, l, metav1.CreateOptions{FieldManager: "licenseha-agent"})
	case election.LeaseUpdate:
		if k.last != nil && k.last.ResourceVersion == cmd.Record.Version {
			got = k.last.DeepCopy()
		} else {
			got, err = leases.Get(ctx, name, metav1.GetOptions{})
		}
		if err == nil {
			if got.ResourceVersion != cmd.Record.Version {
				k.last = got
				res.Outcome, res.Record = election.LeaseConflict, k.record(got)
				return res
			}
			k.fill(got, cmd.Record)
			got, err = leases.Update(ctx, got, metav1.UpdateOptions{FieldManager: "licenseha-agent"})
		}
	}
	k.last = nil
	switch {
	case err == nil:
		k.last = got
		res.Outcome, res.Record = election.LeaseOK, k.record(got)
	case apierrors.IsNotFound(err):
		res.Outcome = election.LeaseNotFound
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		res.Outcome = election.LeaseConflict
	default:
		// Timeouts, refused connections, 5xx, and RBAC refusals: the
		// operation may or may not have happened.
		res.Outcome = election.LeaseUnreachable
	}
	return res
}

func (k *kubeLeases) podOf(m election.MemberID) string {
	if m == "" {
		return ""
	}
	return group.PodName(k.group, string(m))
}

// fill writes a protocol record into a Lease object.
func (k *kubeLeases) fill(l *coordinationv1.Lease, r election.LeaseRecord) {
	now := metav1.NewMicroTime(time.Now())
	prevEpoch, _ := strconv.ParseInt(l.Annotations[group.AnnotationLeaseEpoch], 10, 64)
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[group.AnnotationLeaseEpoch] = strconv.FormatInt(r.Epoch, 10)
	l.Annotations[annIncarnation] = strconv.FormatUint(r.HolderIncarnation, 10)
	l.Annotations[annHandoffTo] = string(r.HandoffTo)
	l.Annotations[annReason] = string(r.Reason)
	l.Annotations[annAfterRelease] = strconv.FormatBool(r.AfterRelease)
	if r.Holder == "" {
		l.Spec.HolderIdentity = nil
	} else {
		l.Spec.HolderIdentity = ptr.To(k.podOf(r.Holder))
	}
	l.Spec.LeaseDurationSeconds = ptr.To(k.durationSeconds)
	l.Spec.RenewTime = &now
	if r.Epoch != prevEpoch {
		l.Spec.AcquireTime = &now
		l.Spec.LeaseTransitions = ptr.To(int32(r.Epoch))
	}
}

// record reads the protocol record out of a Lease object.
func (k *kubeLeases) record(l *coordinationv1.Lease) election.LeaseRecord {
	r := election.LeaseRecord{Version: l.ResourceVersion}
	if l.Spec.HolderIdentity != nil {
		r.Holder = election.MemberID(strings.TrimPrefix(*l.Spec.HolderIdentity, k.group+"-"))
	}
	r.Epoch, _ = strconv.ParseInt(l.Annotations[group.AnnotationLeaseEpoch], 10, 64)
	r.HolderIncarnation, _ = strconv.ParseUint(l.Annotations[annIncarnation], 10, 64)
	r.HandoffTo = election.MemberID(l.Annotations[annHandoffTo])
	r.Reason = election.Reason(l.Annotations[annReason])
	r.AfterRelease, _ = strconv.ParseBool(l.Annotations[annAfterRelease])
	return r
}
