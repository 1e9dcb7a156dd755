package controllers

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
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
// Both write only what inspectChildren found free or the group's own (see
// ownership.go).

// apply server-side-applies obj. existing is what inspectChildren found
// under obj's name; ok is false when the name was free. An existing object
// is applied with its UID as a precondition, so the apply fails rather than
// write to an object that replaced it; only then does the operator force its
// ownership of the fields (someone edited the group's object). A free name is
// applied without force: an object someone else created in the meantime
// makes the apply fail on the first field they set differently.
// Unchanged objects cost the API server no write: it recognises a no-op
// apply and keeps the resourceVersion.
func apply(ctx context.Context, c client.Client, obj client.Object, existing found, ok bool) error {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: m}
	// Fields the operator must not claim ownership of.
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	opts := []client.ApplyOption{client.FieldOwner(FieldManager)}
	if ok {
		u.SetUID(existing.uid)
		opts = append(opts, client.ForceOwnership)
	}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...); err != nil {
		return fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}

// createOnce creates obj when its name was free. An existing object of the
// group's is left alone; a retained one (see retainedFor) is adopted by
// owner, with the resourceVersion inspectChildren read as a precondition.
func createOnce(ctx context.Context, c client.Client, obj client.Object, existing found, ok bool, owner metav1.OwnerReference) error {
	switch {
	case ok && !existing.retained:
		return nil
	case ok:
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"ownerReferences": []metav1.OwnerReference{owner},
			"resourceVersion": existing.resourceVersion,
			"uid":             existing.uid,
		}})
		if err != nil {
			return err
		}
		target := obj.DeepCopyObject().(client.Object)
		if err := c.Patch(ctx, target, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldManager)); err != nil {
			return fmt.Errorf("adopting retained %T %s: %w", obj, obj.GetName(), err)
		}
		return nil
	}
	err := c.Create(ctx, obj, client.FieldOwner(FieldManager))
	if apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("%T %s %w", obj, obj.GetName(), errAppeared)
	}
	if err != nil {
		return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
	}
	return nil
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
