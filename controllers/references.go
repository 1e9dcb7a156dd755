package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
)

// fetchReferences reads the referenced Secrets and ConfigMaps directly from
// the API server (they are watched as metadata only, see referencingGroups).
func fetchReferences(ctx context.Context, r client.Reader, namespace string, refs []reference) ([]reference, error) {
	out := make([]reference, len(refs))
	for i, ref := range refs {
		key := types.NamespacedName{Namespace: namespace, Name: ref.name}
		var err error
		if ref.isSecret {
			s := &corev1.Secret{}
			if err = r.Get(ctx, key, s); err == nil {
				ref.secret = s
			}
		} else {
			cm := &corev1.ConfigMap{}
			if err = r.Get(ctx, key, cm); err == nil {
				ref.configMap = cm
			}
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading %s %q: %w", ref.field, ref.name, err)
		}
		out[i] = ref
	}
	return out, nil
}

// referenced is what a group of either kind references, and where its
// status records what was found.
type referenced struct {
	// licenseSecrets are the licence Secrets, each with the field naming it.
	licenseSecrets []reference
	// spec and status are the group's; spec.settingsRef names the settings
	// ConfigMap, status records what was found.
	spec   *licensehav1.GroupSpec
	status *licensehav1.GroupStatus
	// verify checks the licences in the licence Secrets (in the order of
	// licenseSecrets) once every referenced object exists, and returns
	// LicenseValid and when to look again.
	verify func(secrets []*corev1.Secret) (metav1.Condition, ctrl.Result)
}

// checkReferences reads the licence Secrets and the settings ConfigMap of
// obj, checks the settings, and records the result in LicenseValid. A
// missing object is not an error to retry: the watch on referenced objects
// brings the group back as soon as it appears.
func (r *groupReconciler) checkReferences(ctx context.Context, obj client.Object, in referenced) (ctrl.Result, error) {
	refs := in.licenseSecrets
	if in.spec.SettingsRef != nil {
		refs = append(refs, reference{field: "spec.settingsRef", name: in.spec.SettingsRef.Name})
	}
	found, err := fetchReferences(ctx, r.APIReader, obj.GetNamespace(), refs)
	if err != nil {
		return ctrl.Result{}, err
	}
	var settingsCM *corev1.ConfigMap
	if in.spec.SettingsRef != nil {
		settingsCM = found[len(found)-1].configMap
	}
	r.rememberSettings(obj.GetNamespace()+"/"+obj.GetName(),
		checkSettings(obj.GetGeneration(), in.spec.SettingsRef, settingsCM, &in.status.Settings, &in.status.Conditions))
	licenseCond := referencesCondition(obj.GetGeneration(), found)
	var res ctrl.Result
	if licenseCond.Status == metav1.ConditionTrue {
		secrets := make([]*corev1.Secret, len(in.licenseSecrets))
		for i := range secrets {
			secrets[i] = found[i].secret
		}
		licenseCond, res = in.verify(secrets)
	}
	meta.SetStatusCondition(&in.status.Conditions, licenseCond)
	return res, nil
}

// Field indexes over the groups, so that an event on a Secret or ConfigMap
// finds the groups that reference it, and a group the others that need one
// of its object names (nameConflicts), without listing every group.
const (
	indexSecretRefs    = "licenseha.io/secret-refs"
	indexConfigMapRefs = "licenseha.io/configmap-refs"
	indexChildren      = "licenseha.io/children"
	// indexController indexes pods by the UID of their controller.
	indexController = "licenseha.io/controller-uid"
)

// childKeys lists the builder.Child keys (kind/name) of a group's objects.
func childKeys(g builder.Group) []string {
	children := builder.Children(g)
	keys := make([]string, len(children))
	for i, ch := range children {
		keys[i] = ch.Key()
	}
	return keys
}

// notificationSecretRefs lists the Secrets a notifications block references.
func notificationSecretRefs(n *licensehav1.NotificationsSpec) []string {
	if n == nil {
		return nil
	}
	var names []string
	if n.Webhook != nil && n.Webhook.SecretRef != nil {
		names = append(names, n.Webhook.SecretRef.Name)
	}
	if n.Email != nil && n.Email.CredentialsSecretRef != nil {
		names = append(names, n.Email.CredentialsSecretRef.Name)
	}
	return names
}

func settingsRefs(ref *licensehav1.LocalObjectReference) []string {
	if ref == nil {
		return nil
	}
	return []string{ref.Name}
}

// SetupIndexes registers the field indexes both reconcilers rely on. Call it
// once per manager, before the reconcilers are set up.
func SetupIndexes(ctx context.Context, mgr manager.Manager) error {
	idx := mgr.GetFieldIndexer()
	indexes := append(kindIndexes(triadKind), kindIndexes(pairKind)...)
	indexes = append(indexes, fieldIndex{&corev1.Pod{}, indexController, func(o client.Object) []string {
		if ref := metav1.GetControllerOfNoCopy(o); ref != nil {
			return []string{string(ref.UID)}
		}
		return nil
	}})
	for _, i := range indexes {
		if err := idx.IndexField(ctx, i.obj, i.field, i.fn); err != nil {
			return err
		}
	}
	return nil
}

// referencingGroups maps a Secret or ConfigMap to the groups of one kind in
// its namespace that reference it, through the field index.
// field is indexSecretRefs or indexConfigMapRefs. The referenced objects are
// watched as metadata only, so the operator never caches the contents of
// every Secret in the cluster; it reads the few it needs directly.
func referencingGroups(c client.Client, field string, k kindNames) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		groups, err := k.list(ctx, c, obj.GetNamespace(), client.MatchingFields{field: obj.GetName()})
		if err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for _, o := range groups {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}})
		}
		return reqs
	}
}

// withDisconnectedState adds to refs, for a ConfigMap <pair>-state, the
// disconnected pair it belongs to: kubectl licenseha backup export/import
// record the bundle revisions there, which status.bundleRevision and
// syncState follow. Connected pairs are left out, so their agents'
// publications into that ConfigMap cause no reconciles.
func withDisconnectedState(c client.Client, refs handler.MapFunc) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		reqs := refs(ctx, obj)
		for _, o := range obj.GetOwnerReferences() {
			if o.Kind != "LicenseBackupPair" || group.StateName(o.Name) != obj.GetName() {
				continue
			}
			p := &licensehav1.LicenseBackupPair{}
			if err := c.Get(ctx, types.NamespacedName{Namespace: obj.GetNamespace(), Name: o.Name}, p); err != nil ||
				p.UID != o.UID || p.Spec.Disconnected == nil {
				continue
			}
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
		}
		return reqs
	}
}
