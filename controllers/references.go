package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
)

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

// triadSecretRefs lists every Secret a triad reads.
func triadSecretRefs(t *licensehav1.LicenseTriad) []string {
	names := append([]string{t.Spec.LicenseSecretRef.Name}, notificationSecretRefs(t.Spec.Notifications)...)
	names = append(names, mountedNames(builder.FromTriad(t), "Secret")...)
	return append(names, clientAccessSecretRefs(t.Name, t.Spec.ClientAccess)...)
}

// pairSecretRefs lists every Secret a backup pair reads.
func pairSecretRefs(p *licensehav1.LicenseBackupPair) []string {
	names := []string{p.Spec.Main.LicenseSecretRef.Name, p.Spec.Backup.LicenseSecretRef.Name}
	names = append(names, notificationSecretRefs(p.Spec.Notifications)...)
	names = append(names, mountedNames(builder.FromPair(p), "Secret")...)
	return append(names, clientAccessSecretRefs(p.Name, p.Spec.ClientAccess)...)
}

// SetupIndexes registers the field indexes both reconcilers rely on. Call it
// once per manager, before the reconcilers are set up.
func SetupIndexes(ctx context.Context, mgr manager.Manager) error {
	idx := mgr.GetFieldIndexer()
	indexes := []struct {
		obj   client.Object
		field string
		fn    client.IndexerFunc
	}{
		{&licensehav1.LicenseTriad{}, indexSecretRefs, func(o client.Object) []string {
			return triadSecretRefs(o.(*licensehav1.LicenseTriad))
		}},
		{&licensehav1.LicenseTriad{}, indexConfigMapRefs, func(o client.Object) []string {
			t := o.(*licensehav1.LicenseTriad)
			return append(settingsRefs(t.Spec.SettingsRef), mountedNames(builder.FromTriad(t), "ConfigMap")...)
		}},
		{&licensehav1.LicenseBackupPair{}, indexSecretRefs, func(o client.Object) []string {
			return pairSecretRefs(o.(*licensehav1.LicenseBackupPair))
		}},
		{&licensehav1.LicenseBackupPair{}, indexConfigMapRefs, func(o client.Object) []string {
			p := o.(*licensehav1.LicenseBackupPair)
			return append(settingsRefs(p.Spec.SettingsRef), mountedNames(builder.FromPair(p), "ConfigMap")...)
		}},
		{&corev1.Pod{}, indexController, func(o client.Object) []string {
			if ref := metav1.GetControllerOfNoCopy(o); ref != nil {
				return []string{string(ref.UID)}
			}
			return nil
		}},
		{&licensehav1.LicenseTriad{}, indexChildren, func(o client.Object) []string {
			return childKeys(builder.FromTriad(o.(*licensehav1.LicenseTriad)))
		}},
		{&licensehav1.LicenseBackupPair{}, indexChildren, func(o client.Object) []string {
			return childKeys(builder.FromPair(o.(*licensehav1.LicenseBackupPair)))
		}},
	}
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
func referencingGroups(c client.Client, field string, newList func() client.ObjectList) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		list := newList()
		if err := c.List(ctx, list, client.InNamespace(obj.GetNamespace()),
			client.MatchingFields{field: obj.GetName()}); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		switch l := list.(type) {
		case *licensehav1.LicenseTriadList:
			for _, item := range l.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: item.Namespace, Name: item.Name}})
			}
		case *licensehav1.LicenseBackupPairList:
			for _, item := range l.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: item.Namespace, Name: item.Name}})
			}
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
