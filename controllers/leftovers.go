package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
)

// A group deleted and created again at once under the same name finds the
// children of its predecessor still there: the garbage collector removes
// them some time after the predecessor is gone (or never, where no garbage
// collector runs). Left alone, a predecessor's member pod blocks the pod of
// the same name, its Lease and volume claims refuse adoption, and its pods
// carry the labels the new group's Services select. The operator therefore
// deletes every object whose controller is a group of the same kind and
// name with another UID, and starts the new group's members once they are
// gone. What dissolvePolicy Retain keeps (the synced state and the Lease) was
// detached from the predecessor when it dissolved: it has no owner, is never
// deleted here, and is adopted as before.

// leftoverKinds are the kinds of object a group creates; every one carries
// the group's selector labels.
var leftoverKinds = []schema.GroupVersionKind{
	{Version: "v1", Kind: "Pod"},
	{Version: "v1", Kind: "PersistentVolumeClaim"},
	{Version: "v1", Kind: "Service"},
	{Version: "v1", Kind: "ConfigMap"},
	{Version: "v1", Kind: "Secret"},
	{Version: "v1", Kind: "ServiceAccount"},
	{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"},
	{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"},
}

// leftoverRequeue is how soon a group whose predecessor's objects are being
// deleted is reconciled again. Deleting a pod takes its grace period; the pod
// watch brings the group back as well, but not every kind is watched.
const leftoverRequeue = time.Second

// leftByPredecessor reports whether obj's controller is a group of the same
// kind and name as owner but another UID. Names are unique per kind and
// namespace, so such a group no longer exists.
func leftByPredecessor(obj metav1.Object, owner metav1.OwnerReference) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	if ref == nil || ref.UID == owner.UID || ref.Kind != owner.Kind || ref.Name != owner.Name {
		return false
	}
	refGV, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && refGV.Group == licensehav1.GroupVersion.Group
}

// removeLeftovers deletes what a deleted group of the same kind and name as g
// left behind. While any of it is still there it returns a blocker that
// names it and a short requeue. Once a group was found clear it is not
// scanned again: nothing can give its predecessor new children.
func (r *groupReconciler) removeLeftovers(ctx context.Context, g builder.Group) (*blocker, ctrl.Result, error) {
	if r.cleared != nil {
		if _, done := r.cleared.Load(g.Owner.UID); done {
			return nil, ctrl.Result{}, nil
		}
	}
	// Uncached reads: deleting is decided on what the API server holds.
	reader := r.reader()
	var left []string
	for _, gvk := range leftoverKinds {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := reader.List(ctx, list, client.InNamespace(g.Namespace), client.MatchingLabels(builder.SelectorLabels(g))); err != nil {
			return nil, ctrl.Result{}, fmt.Errorf("listing %ss: %w", gvk.Kind, err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			if !leftByPredecessor(obj, g.Owner) {
				continue
			}
			left = append(left, gvk.Kind+" "+obj.Name)
			if err := r.deleteLeftover(ctx, gvk, obj); err != nil {
				return nil, ctrl.Result{}, err
			}
		}
	}
	if len(left) == 0 {
		if r.cleared != nil {
			r.cleared.Store(g.Owner.UID, struct{}{})
		}
		return nil, ctrl.Result{}, nil
	}
	return leftoverBlocker(g, left), ctrl.Result{RequeueAfter: leftoverRequeue}, nil
}

// deleteLeftover deletes one object a deleted group of the same kind and
// name left behind, unless it is going already.
func (r *groupReconciler) deleteLeftover(ctx context.Context, gvk schema.GroupVersionKind, obj *metav1.PartialObjectMetadata) error {
	if obj.DeletionTimestamp != nil {
		return nil
	}
	logf.FromContext(ctx).Info("Deleting an object a deleted group of the same name left behind", "kind", gvk.Kind, "name", obj.Name,
		"ownerUID", metav1.GetControllerOfNoCopy(obj).UID)
	obj.SetGroupVersionKind(gvk)
	// The UID precondition makes sure only that very object goes.
	uid := obj.UID
	if err := r.Delete(ctx, obj, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting %s %s left by a deleted group: %w", gvk.Kind, obj.Name, err)
	}
	return nil
}

// leftoverBlocker names what a predecessor left and the operator is deleting.
func leftoverBlocker(g builder.Group, left []string) *blocker {
	const shown = 6
	names := strings.Join(left, ", ")
	if len(left) > shown {
		names = fmt.Sprintf("%s and %d more", strings.Join(left[:shown], ", "), len(left)-shown)
	}
	return &blocker{reason: licensehav1.ReasonPredecessorLeftovers,
		message: fmt.Sprintf("Deleting what the deleted %s %s left behind: %s; the members start once it is gone",
			g.Owner.Kind, g.Owner.Name, names)}
}

// forgetCleared drops a dissolved group from the groups found clear.
func (r *groupReconciler) forgetCleared(obj metav1.Object) {
	if r.cleared != nil {
		r.cleared.Delete(obj.GetUID())
	}
}
