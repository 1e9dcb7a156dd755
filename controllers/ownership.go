package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
)

// The operator acts only on what a group owns. Every object it writes for a
// group has a name derived from the group's (builder.Children), and anyone
// may have created an object of that name first: a Service "plant-a" of
// another application, a ConfigMap "plant-a-config", another group whose
// member pod happens to be "plant-a-b". Before it writes anything for a
// group, the operator therefore reads every one of those names from the API
// server and writes only if each is
//   - absent (it creates it),
//   - controlled by the group (controller owner reference with the group's
//     UID; later writes carry that UID as a precondition, so a replaced
//     object is never written), or
//   - what dissolvePolicy Retain kept of a deleted group of the same kind and
//     name: the synced state and the Lease, with no owner and the group
//     labels the operator set when it created them (it adopts them).
// Objects a deleted group of the same kind and name left behind are deleted
// (see leftovers.go). Anything else blocks the group: Ready is False with
// reason ObjectNotOwned (MemberInAnotherGroup for a pod) naming the object,
// and the operator writes nothing for the group until it is gone. A name
// that is still free but that another group created earlier also needs
// blocks the group too (NameConflict), so two groups never share an object.

// blockedRequeue is how often a group blocked by an object it does not own,
// or by another group's name, looks again: those objects are not watched.
const blockedRequeue = 5 * time.Second

// found is a child of a group that exists and the group may write.
type found struct {
	uid             types.UID
	resourceVersion string
	// retained is true for an object kept by dissolvePolicy Retain of a
	// deleted group of the same kind and name, not adopted yet.
	retained bool
}

// children maps builder.Child.Key() to the children that exist and are the
// group's; a name that is not in it is free.
type children map[string]found

// errAppeared ends a reconcile when an object of a name found free a moment
// earlier was created by someone else meanwhile; the next reconcile reports
// it.
var errAppeared = errors.New("was created by someone else meanwhile; not touching it")

// prepareWrites runs once a group's licences verified, before the operator
// writes anything for it: it removes what a deleted group of the same name
// left behind, checks every name the group needs, and then adds the
// finalizer. A non-nil blocker means the operator writes nothing for the
// group in this reconcile.
func (r *groupReconciler) prepareWrites(ctx context.Context, obj client.Object, g builder.Group) (*blocker, children, ctrl.Result, error) {
	blocked, res, err := r.removeLeftovers(ctx, g)
	if err != nil || blocked != nil {
		return blocked, nil, res, err
	}
	have, blocked, res, err := r.inspectChildren(ctx, g, obj.GetCreationTimestamp())
	if err != nil || blocked != nil {
		return blocked, nil, res, err
	}
	if err := ensureFinalizer(ctx, r.Client, obj); err != nil {
		return nil, nil, ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
	}
	return nil, have, ctrl.Result{}, nil
}

// inspectChildren looks up every name a group needs and sorts what it finds
// into the group's own, retained, a predecessor's (deleted here) and foreign
// ones. The group's own objects are found in the operator's cache
// (cachedOwn); every other name is read from the API server, uncached: the
// caches only hold labelled objects, and a foreign object may have no
// labels. A steady group thus costs no API request here.
func (r *groupReconciler) inspectChildren(ctx context.Context, g builder.Group, created metav1.Time) (children, *blocker, ctrl.Result, error) {
	reader := r.reader()
	have := children{}
	var foreign, foreignPods, left []string
	var free []builder.Child
	for _, ch := range builder.Children(g) {
		if own, ok := r.cachedOwn(ctx, g, ch); ok {
			have[ch.Key()] = own
			continue
		}
		obj := &metav1.PartialObjectMetadata{}
		obj.SetGroupVersionKind(ch.GVK)
		err := reader.Get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: ch.Name}, obj)
		if apierrors.IsNotFound(err) {
			free = append(free, ch)
			continue
		}
		if err != nil {
			return nil, nil, ctrl.Result{}, fmt.Errorf("reading %s %s: %w", ch.GVK.Kind, ch.Name, err)
		}
		ref := metav1.GetControllerOfNoCopy(obj)
		switch {
		case ref != nil && ref.UID == g.Owner.UID:
			have[ch.Key()] = found{uid: obj.UID, resourceVersion: obj.ResourceVersion}
		case leftByPredecessor(obj, g.Owner):
			// Normally removeLeftovers got it already; this one lost the
			// group labels it is found by.
			left = append(left, ch.GVK.Kind+" "+ch.Name)
			if err := r.deleteLeftover(ctx, ch.GVK, obj); err != nil {
				return nil, nil, ctrl.Result{}, err
			}
		case ch.Retained && retainedFor(obj, g):
			have[ch.Key()] = found{uid: obj.UID, resourceVersion: obj.ResourceVersion, retained: true}
		default:
			desc := fmt.Sprintf("%s %s exists and is not owned by this %s", ch.GVK.Kind, ch.Name, g.Owner.Kind)
			if ref != nil {
				desc += fmt.Sprintf(" (it belongs to %s %s)", ref.Kind, ref.Name)
			}
			if ch.GVK.Kind == "Pod" {
				foreignPods = append(foreignPods, desc)
			} else {
				foreign = append(foreign, desc)
			}
		}
	}
	switch {
	case len(left) > 0:
		return nil, leftoverBlocker(g, left), ctrl.Result{RequeueAfter: leftoverRequeue}, nil
	case len(foreign) > 0:
		return nil, &blocker{reason: licensehav1.ReasonObjectNotOwned, failed: true,
			message: joinShown(append(foreign, foreignPods...)) +
				". The operator changes nothing for this group until it is removed; or rename the group"}, ctrl.Result{RequeueAfter: blockedRequeue}, nil
	case len(foreignPods) > 0:
		return nil, &blocker{reason: licensehav1.ReasonMemberInOtherGroup, failed: true,
			message: joinShown(foreignPods) +
				"; a member may not belong to another group. Rename the members or remove those pods"}, ctrl.Result{RequeueAfter: blockedRequeue}, nil
	}
	if len(free) > 0 {
		conflicts, err := r.nameConflicts(ctx, g, created, free)
		if err != nil {
			return nil, nil, ctrl.Result{}, err
		}
		if len(conflicts) > 0 {
			return nil, &blocker{reason: licensehav1.ReasonNameConflict, failed: true,
				message: joinShown(conflicts) + ". Rename a member or this group, or delete the other group"}, ctrl.Result{RequeueAfter: blockedRequeue}, nil
		}
	}
	return have, nil, ctrl.Result{}, nil
}

// cachedOwn finds ch in the operator's cache as an object the group
// controls. The caches hold every object labelled with a group, and the
// metadata of every Secret and ConfigMap. A cached entry may be stale, which
// is safe: writes to the group's own objects carry the UID found here as a
// precondition, so an object that was replaced meanwhile is never written,
// and one that was deleted is recreated after the delete event.
func (r *groupReconciler) cachedOwn(ctx context.Context, g builder.Group, ch builder.Child) (found, bool) {
	if r.Cache == nil {
		return found{}, false
	}
	typed, err := r.Scheme().New(ch.GVK)
	if err != nil {
		return found{}, false
	}
	obj := typed.(client.Object)
	if isUncached(obj) {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(ch.GVK)
		obj = m
	}
	if err := r.Cache.Get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: ch.Name}, obj); err != nil ||
		!ownedByGroup(obj, g.Owner.UID) {
		return found{}, false
	}
	return found{uid: obj.GetUID(), resourceVersion: obj.GetResourceVersion()}, true
}

// retainedFor reports whether obj is what dissolvePolicy Retain kept of a
// deleted group of g's kind and name: dissolve detached it (no owner left)
// and it still carries the group labels the operator gave it.
func retainedFor(obj metav1.Object, g builder.Group) bool {
	if len(obj.GetOwnerReferences()) > 0 {
		return false
	}
	for k, v := range builder.SelectorLabels(g) {
		if obj.GetLabels()[k] != v {
			return false
		}
	}
	return true
}

// nameConflicts lists the free names of g that another group of the
// namespace, created earlier, needs as well. The earlier group has them: if
// its object of that name is missing for a moment (a pod being recreated),
// g must not take the name. Groups being deleted create nothing more and do
// not count. The groups needing a name are found through the indexChildren
// field index, so the check costs the same with one group or thousands.
func (r *groupReconciler) nameConflicts(ctx context.Context, g builder.Group, created metav1.Time, free []builder.Child) ([]string, error) {
	self := g.Kind + "/" + g.Name
	var conflicts []string
	for _, ch := range free {
		var others []client.Object
		kinds := map[client.Object]string{}
		needing := client.MatchingFields{indexChildren: ch.Key()}
		for _, k := range allKinds {
			groups, err := k.list(ctx, r.Client, g.Namespace, needing)
			if err != nil {
				return nil, fmt.Errorf("listing %s: %w", k.plural, err)
			}
			for _, o := range groups {
				others, kinds[o] = append(others, o), k.kind
			}
		}
		for _, o := range others {
			if o.GetUID() == g.Owner.UID || o.GetDeletionTimestamp() != nil {
				continue
			}
			kind := kinds[o]
			// The earlier group keeps the name; at the same second, the one
			// whose kind/name sorts first.
			oc := o.GetCreationTimestamp()
			earlier := oc.Before(&created) || (oc.Equal(&created) && kind+"/"+o.GetName() < self)
			if earlier {
				conflicts = append(conflicts, fmt.Sprintf("%s %s is also a name of %s %s, created earlier",
					ch.GVK.Kind, ch.Name, kind, o.GetName()))
			}
		}
	}
	sort.Strings(conflicts)
	return conflicts, nil
}

// joinShown joins descriptions, naming at most a few.
func joinShown(items []string) string {
	const shown = 4
	if len(items) > shown {
		return fmt.Sprintf("%s; and %d more", strings.Join(items[:shown], "; "), len(items)-shown)
	}
	return strings.Join(items, "; ")
}

// deleteExact deletes obj only if it is still the object of that UID: a
// replaced object of the same name is left alone.
func deleteExact(ctx context.Context, c client.Client, obj client.Object) error {
	uid := obj.GetUID()
	err := c.Delete(ctx, obj, client.Preconditions{UID: &uid})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// ownedByGroup reports whether obj's controller is the group of that UID.
func ownedByGroup(obj metav1.Object, group types.UID) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	return ref != nil && ref.UID == group
}

// logKept logs an object dissolve leaves alone, and why.
func logKept(ctx context.Context, obj client.Object, why string) {
	logf.FromContext(ctx).Info("Keeping an object on dissolve", "kind", fmt.Sprintf("%T", obj), "name", obj.GetName(), "why", why)
}

// reader is the uncached reader the operator decides its writes on.
func (r *groupReconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}
