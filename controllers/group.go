package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/licensing"
)

// groupReconciler holds what both reconcilers need.
type groupReconciler struct {
	client.Client
	// APIReader reads referenced Secrets and ConfigMaps uncached.
	APIReader client.Reader
	// Cache is the manager's cache, where inspectChildren finds the group's
	// own objects (Secrets and ConfigMaps as metadata); nil reads them all
	// from the API server.
	Cache    client.Reader
	Recorder events.EventRecorder
	notifier *notifier
	// Options are handed to the builders (the licenseha image).
	Options builder.Options
	// TrustedKeys are the PEM public keys licences must be signed with; the
	// agents receive them through the group ConfigMap. Keys verify the
	// licences (parsed from TrustedKeys).
	TrustedKeys []byte
	Keys        licensing.KeyRing
	// cleared holds the UIDs of the groups found free of a predecessor's
	// leftovers (see removeLeftovers); nil scans on every reconcile.
	cleared *sync.Map
	// settings holds, per group (namespace/name), the valid settings of
	// spec.settingsRef the references step read, for the members step.
	settings *sync.Map
	// concurrency is the controller's MaxConcurrentReconciles.
	concurrency int
}

// FieldManager is the field manager of every write the operator makes.
const FieldManager = group.FieldManagerOperator

// ensureFinalizer adds the dissolve finalizer with a patch that touches only
// metadata; the operator never writes a group's spec. It patches a copy, so
// the group's status patch at the end of the reconcile stays a status-only
// diff.
func ensureFinalizer(ctx context.Context, c client.Client, obj client.Object) error {
	if controllerutil.ContainsFinalizer(obj, licensehav1.Finalizer) {
		return nil
	}
	patched := obj.DeepCopyObject().(client.Object)
	controllerutil.AddFinalizer(patched, licensehav1.Finalizer)
	return c.Patch(ctx, patched, client.MergeFromWithOptions(obj, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager))
}

// dissolveMember is a member (a pair's side) as dissolve sees it.
type dissolveMember struct {
	name          string
	licenseSecret string
}

// dissolvePlan is what dissolve needs to know of a group of either kind.
type dissolvePlan struct {
	policy  licensehav1.DissolvePolicy
	members []dissolveMember
	// storage says whether the members have volume claims.
	storage bool
	// keepOn is the member that keeps the licences and its data under
	// KeepOnActive and MoveTo (see keepOnMember); "" otherwise.
	keepOn string
	// keepOnWhy says how keepOn was chosen, for the Dissolved event.
	keepOnWhy string
}

// keepOnMember chooses the member that keeps the licences under
// KeepOnActive (the serving one, else fallback, the primary or main) and
// MoveTo (the named one).
func keepOnMember(policy licensehav1.DissolvePolicy, moveTo, active, fallback string) (member, why string) {
	switch policy {
	case licensehav1.DissolveMoveTo:
		return moveTo, "named by spec.dissolveMoveTo"
	case licensehav1.DissolveKeepOnActive:
		if active != "" {
			return active, "the active member"
		}
		return fallback, "no member served, so the primary"
	}
	return "", ""
}

// dissolve applies a group's dissolvePolicy and then releases the finalizer.
// Retain detaches the synced-state objects and the Lease from the group so
// the garbage collector keeps them (a group of the same name picks them up
// again, see retainedFor); Delete removes the synced state and the licence
// Secrets that opt in with LabelDeleteWithGroup. KeepOnActive and MoveTo
// keep what Retain keeps plus the kept member's volume claim, and delete
// the other members' licence Secrets that opt in. Whatever the policy, only
// the group's own objects are detached or deleted (reads are uncached, and
// deletes carry the UID read as a precondition): a licence Secret belongs
// to whoever created it, and a group must not delete what its spec merely
// names. The group is going away, so what happened is recorded where an
// admin still finds it afterwards: a Dissolved event and annotations on
// the objects kept.
func dissolve(ctx context.Context, c client.Client, reader client.Reader, recorder events.EventRecorder, owner client.Object, kind string, plan dissolvePlan) error {
	if !controllerutil.ContainsFinalizer(owner, licensehav1.Finalizer) {
		return nil
	}
	ns := owner.GetNamespace()
	var kept, deleted []string
	record := func(obj client.Object, gone bool, err error) error {
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%s %s", kindOf(obj), obj.GetName())
		if gone {
			deleted = append(deleted, desc)
		} else if obj.GetUID() != "" {
			kept = append(kept, desc)
		}
		return nil
	}
	state := []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: group.StateName(owner.GetName())}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: group.StateName(owner.GetName())}},
	}
	optedIn := func(o client.Object) string {
		if o.GetLabels()[licensehav1.LabelDeleteWithGroup] != "true" {
			return "the licence Secret does not carry " + licensehav1.LabelDeleteWithGroup + `: "true"`
		}
		return ""
	}
	switch plan.policy {
	case licensehav1.DissolveDelete:
		for _, obj := range state {
			gone, err := deleteIf(ctx, c, reader, obj, func(o client.Object) string {
				if !ownedByGroup(o, owner.GetUID()) {
					return "not owned by the group"
				}
				return ""
			})
			if err := record(obj, gone, err); err != nil {
				return err
			}
		}
		for _, name := range plan.licenseSecrets("") {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			gone, err := deleteIf(ctx, c, reader, s, optedIn)
			if err := record(s, gone, err); err != nil {
				return err
			}
		}
	default:
		// The Lease stays with the state: it carries the fencing epoch, and
		// the synced state was written under it. A group of the same name
		// continues from both, so its epochs stay above everything its
		// servers and synced state have seen.
		state = append(state, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: group.LeaseName(owner.GetName())}})
		if plan.keepOn != "" && plan.storage {
			// The kept member's data folder; the other members' claims stay
			// owned and go with the group.
			state = append(state, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: group.PVCName(owner.GetName(), plan.keepOn)}})
		}
		marks := map[string]string{licensehav1.AnnotationDissolvePolicy: fmt.Sprintf("%s %s/%s", plan.policy, kind, owner.GetName())}
		if plan.keepOn != "" {
			marks[licensehav1.AnnotationDissolveKeptOn] = plan.keepOn
		}
		for _, obj := range state {
			ours, err := orphan(ctx, c, reader, obj, owner.GetUID(), marks)
			if err != nil {
				return err
			}
			if ours {
				kept = append(kept, fmt.Sprintf("%s %s", kindOf(obj), obj.GetName()))
			}
		}
		if plan.keepOn != "" {
			for _, name := range plan.licenseSecrets(plan.keepOn) {
				s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
				gone, err := deleteIf(ctx, c, reader, s, optedIn)
				if err != nil {
					return err
				}
				switch {
				case gone:
					deleted = append(deleted, "Secret "+name)
				case s.UID != "":
					kept = append(kept, "Secret "+name+" (no "+licensehav1.LabelDeleteWithGroup+" label)")
				}
			}
		}
	}
	if recorder != nil {
		recorder.Eventf(owner, nil, corev1.EventTypeNormal, licensehav1.ReasonDissolved, "Dissolve", "%s", plan.summary(kept, deleted))
	}
	logf.FromContext(ctx).Info("Dissolved group", "dissolvePolicy", plan.policy, "keptOn", plan.keepOn, "kept", kept, "deleted", deleted)
	base := owner.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(owner, licensehav1.Finalizer)
	return client.IgnoreNotFound(c.Patch(ctx, owner, client.MergeFrom(base), client.FieldOwner(FieldManager)))
}

// licenseSecrets lists the licence Secrets dissolve may delete: every
// member's, or with keepOn set, those of the other members that keepOn
// does not use as well. Each name appears once.
func (p dissolvePlan) licenseSecrets(keepOn string) []string {
	keep := map[string]bool{}
	for _, m := range p.members {
		if keepOn != "" && m.name == keepOn {
			keep[m.licenseSecret] = true
		}
	}
	var out []string
	for _, m := range p.members {
		if m.licenseSecret == "" || keep[m.licenseSecret] {
			continue
		}
		keep[m.licenseSecret] = true
		out = append(out, m.licenseSecret)
	}
	return out
}

// summary is the message of the Dissolved event.
func (p dissolvePlan) summary(kept, deleted []string) string {
	msg := "dissolvePolicy " + string(p.policy)
	if p.keepOn != "" {
		msg += fmt.Sprintf(": licences and data kept on %s (%s)", p.keepOn, p.keepOnWhy)
		for _, m := range p.members {
			if m.name == p.keepOn && m.licenseSecret != "" {
				msg += fmt.Sprintf(", licence Secret %s", m.licenseSecret)
			}
		}
	}
	msg += "; kept: " + listOrNone(kept) + "; deleted: " + listOrNone(deleted)
	return msg
}

func listOrNone(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}

// kindOf names an object's kind for messages.
func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *corev1.ConfigMap:
		return "ConfigMap"
	case *corev1.Secret:
		return "Secret"
	case *corev1.PersistentVolumeClaim:
		return "PersistentVolumeClaim"
	case *coordinationv1.Lease:
		return "Lease"
	}
	return fmt.Sprintf("%T", obj)
}

// deleteIf reads obj and deletes it unless keep names a reason to keep it;
// gone says it was deleted. obj keeps the UID read, or none when absent.
func deleteIf(ctx context.Context, c client.Client, reader client.Reader, obj client.Object, keep func(client.Object) string) (bool, error) {
	if err := reader.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if why := keep(obj); why != "" {
		logKept(ctx, obj, why)
		return false, nil
	}
	if err := deleteExact(ctx, c, obj); err != nil {
		return false, fmt.Errorf("deleting %T %s: %w", obj, obj.GetName(), err)
	}
	return true, nil
}

// orphan removes the owner reference to owner from obj, if obj exists, and
// marks it with annotations saying why it was kept. ours is true when obj
// was the group's (or was detached and marked by an earlier attempt of the
// same dissolve); anything else is left untouched.
func orphan(ctx context.Context, c client.Client, reader client.Reader, obj client.Object, owner types.UID, marks map[string]string) (bool, error) {
	if err := reader.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	refs := obj.GetOwnerReferences()
	kept := refs[:0:0]
	for _, ref := range refs {
		if ref.UID != owner {
			kept = append(kept, ref)
		}
	}
	if len(kept) == len(refs) {
		marked := len(refs) == 0
		for k, v := range marks {
			marked = marked && obj.GetAnnotations()[k] == v
		}
		return marked, nil
	}
	base := obj.DeepCopyObject().(client.Object)
	obj.SetOwnerReferences(kept)
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	for k, v := range marks {
		ann[k] = v
	}
	obj.SetAnnotations(ann)
	if err := c.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager)); err != nil {
		return false, fmt.Errorf("keeping %T %s on dissolve: %w", obj, obj.GetName(), err)
	}
	return true, nil
}

// patchStatus writes obj's status when it differs from before, and only
// then: a steady group causes no status writes.
func patchStatus(ctx context.Context, c client.Client, before, obj client.Object) error {
	patch := client.MergeFrom(before)
	data, err := patch.Data(obj)
	if err != nil {
		return err
	}
	if bytes.Equal(data, []byte("{}")) {
		return nil
	}
	return client.IgnoreNotFound(c.Status().Patch(ctx, obj, patch, client.FieldOwner(FieldManager)))
}

// reportFailure makes a failed reconcile visible where an admin looks
// (kubectl describe, kubectl events) rather than only in the operator's log:
// a Service that gets no ClusterIP, a quota, an admission webhook that
// refuses a pod. Conflicts and objects created meanwhile by someone else are
// part of optimistic concurrency; the next reconcile sorts them out quietly
// or reports them in a condition. The event recorder aggregates repeats.
func reportFailure(recorder events.EventRecorder, obj client.Object, err error) {
	if recorder == nil || apierrors.IsConflict(err) || errors.Is(err, errAppeared) {
		return
	}
	recorder.Eventf(obj, nil, corev1.EventTypeWarning, ReasonReconcileFailed, "Reconcile", "%s; retrying", err.Error())
}

// ReasonReconcileFailed is the reason of the Warning event a failed
// reconcile leaves on its group.
const ReasonReconcileFailed = "ReconcileFailed"

// step is one named step of a group's reconcile. Steps run in order; the
// soonest requeue of all steps wins; an error ends the chain.
type step[T client.Object] struct {
	name string
	fn   func(ctx context.Context, obj T) (ctrl.Result, error)
}

// groupFrame is what differs between the kinds in the shared reconcile.
type groupFrame[T client.Object] struct {
	// dissolve says what dissolving the group keeps and deletes; kind
	// names the group's kind in what it records.
	dissolve dissolvePlan
	kind     string
	steps    []step[T]
	// observed records that every step has seen the current generation.
	observed func()
	// dissolving runs when the group is being deleted.
	dissolving func()
	// recorder receives a Warning event when a step fails.
	recorder events.EventRecorder
}

// reconcileGroup is the reconcile of both kinds: dissolve on deletion, the
// named steps (the finalizer comes with the group's first write, see
// prepareWrites), and one status patch at the end, written only
// when status changed; observedGeneration moves only when the chain ran.
func reconcileGroup[T client.Object](ctx context.Context, c client.Client, reader client.Reader, obj T, f groupFrame[T]) (res ctrl.Result, retErr error) {
	if !obj.GetDeletionTimestamp().IsZero() {
		logf.FromContext(ctx).Info("Dissolving group", "dissolvePolicy", f.dissolve.policy)
		forgetGroup(obj.GetNamespace(), obj.GetName())
		if f.dissolving != nil {
			f.dissolving()
		}
		return ctrl.Result{}, dissolve(ctx, c, reader, f.recorder, obj, f.kind, f.dissolve)
	}
	before := obj.DeepCopyObject().(client.Object)
	defer func() {
		if err := patchStatus(ctx, c, before, obj); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, fmt.Errorf("patching status: %w", err)})
		}
	}()
	for _, st := range f.steps {
		stepRes, err := st.fn(ctx, obj)
		if err != nil {
			err = fmt.Errorf("step %s: %w", st.name, err)
			reportFailure(f.recorder, obj, err)
			return ctrl.Result{}, err
		}
		res = lowestRequeue(res, stepRes)
	}
	f.observed()
	return res, nil
}
