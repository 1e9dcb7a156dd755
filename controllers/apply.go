package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Each child object has exactly one write strategy:
//   - apply (server-side apply, field manager FieldManager) for objects the
//     operator fully owns and keeps in line with the spec: Services, the
//     agents' RBAC, the group ConfigMap;
//   - createOnce for objects others write after creation or that must never
//     be regenerated: the Lease (agents hold it), the synced state (agents
//     write it), the admin token, PVCs, and Pods (rolled by delete+create).

// apply server-side-applies obj. Unchanged objects cost the API server no
// write: it recognises a no-op apply and keeps the resourceVersion.
func apply(ctx context.Context, c client.Client, obj client.Object) error {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: m}
	// Fields the operator must not claim ownership of.
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}

// createOnce creates obj when it does not exist yet. An existing object is
// left alone, except that an orphaned one (kept by dissolvePolicy Retain
// from an earlier group of the same name) is adopted by owner. Only the
// existing object's metadata is read.
func createOnce(ctx context.Context, c client.Client, obj client.Object, owner metav1.OwnerReference) error {
	existing, err := getMetadata(ctx, c, obj)
	switch {
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, obj, client.FieldOwner(FieldManager)); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
		}
		return nil
	case err != nil:
		return err
	}
	for _, ref := range existing.GetOwnerReferences() {
		if ref.UID == owner.UID {
			return nil
		}
	}
	if len(existing.GetOwnerReferences()) > 0 {
		// Owned by something else: not ours to take.
		return fmt.Errorf("%T %s already exists and belongs to %s %s", obj, obj.GetName(),
			existing.GetOwnerReferences()[0].Kind, existing.GetOwnerReferences()[0].Name)
	}
	base := existing.DeepCopyObject().(client.Object)
	existing.SetOwnerReferences([]metav1.OwnerReference{owner})
	return c.Patch(ctx, existing, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager))
}

// getMetadata reads the object named like obj. Secrets and ConfigMaps are
// read from the API server as metadata only (no data crosses the wire);
// other kinds come whole from the cache, where they are watched anyway.
func getMetadata(ctx context.Context, c client.Client, obj client.Object) (client.Object, error) {
	if !isUncached(obj) {
		existing := obj.DeepCopyObject().(client.Object)
		return existing, c.Get(ctx, client.ObjectKeyFromObject(obj), existing)
	}
	gvk, err := apiutil.GVKForObject(obj, c.Scheme())
	if err != nil {
		return nil, err
	}
	existing := &metav1.PartialObjectMetadata{}
	existing.SetGroupVersionKind(gvk)
	return existing, c.Get(ctx, client.ObjectKeyFromObject(obj), existing)
}
