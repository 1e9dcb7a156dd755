package controllers

import (
	"context"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlbuilder "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
)

// The two kinds of group, LicenseTriad and LicenseBackupPair, share their
// reconcile, their watches and their field indexes; groupKind is the table
// of what differs between them, and triadKind and pairKind its two rows.

// kindNames names a kind, and lists its groups, where the kind's type
// does not matter.
type kindNames struct {
	// kind is the kind's name (group.KindTriad, group.KindBackupPair),
	// controller the name of its controller, plural the groups in
	// messages.
	kind, controller, plural string
	newList                  func() client.ObjectList
}

// list returns the groups of the kind in namespace that opts select.
func (k kindNames) list(ctx context.Context, c client.Reader, namespace string, opts ...client.ListOption) ([]client.Object, error) {
	list := k.newList()
	if err := c.List(ctx, list, append([]client.ListOption{client.InNamespace(namespace)}, opts...)...); err != nil {
		return nil, err
	}
	var groups []client.Object
	err := meta.EachListItem(list, func(item runtime.Object) error {
		groups = append(groups, item.(client.Object))
		return nil
	})
	return groups, err
}

// groupKind is what the shared reconcile, watches and indexes need to know
// of one kind.
type groupKind[T client.Object] struct {
	kindNames
	newObj func() T
	// group is the builder's view of a group of the kind.
	group func(T) builder.Group
	// spec and status are the parts of the group's spec and status both
	// kinds have.
	spec   func(T) *licensehav1.GroupSpec
	status func(T) *licensehav1.GroupStatus
	// dissolvePlan says what dissolving the group keeps.
	dissolvePlan func(T) dissolvePlan
	// licenseSecrets names the group's licence Secrets.
	licenseSecrets func(T) []string
	// configMapRequests, when set, wraps the requests a ConfigMap event
	// makes (see withDisconnectedState).
	configMapRequests func(c client.Client, refs handler.MapFunc) handler.MapFunc
}

var triadKind = groupKind[*licensehav1.LicenseTriad]{
	kindNames: kindNames{kind: group.KindTriad, controller: "licensetriad", plural: "triads",
		newList: func() client.ObjectList { return &licensehav1.LicenseTriadList{} }},
	newObj:         func() *licensehav1.LicenseTriad { return &licensehav1.LicenseTriad{} },
	group:          builder.FromTriad,
	spec:           func(t *licensehav1.LicenseTriad) *licensehav1.GroupSpec { return &t.Spec.GroupSpec },
	status:         func(t *licensehav1.LicenseTriad) *licensehav1.GroupStatus { return &t.Status.GroupStatus },
	dissolvePlan:   triadDissolvePlan,
	licenseSecrets: func(t *licensehav1.LicenseTriad) []string { return []string{t.Spec.LicenseSecretRef.Name} },
}

var pairKind = groupKind[*licensehav1.LicenseBackupPair]{
	kindNames: kindNames{kind: group.KindBackupPair, controller: "licensebackuppair", plural: "backup pairs",
		newList: func() client.ObjectList { return &licensehav1.LicenseBackupPairList{} }},
	newObj:       func() *licensehav1.LicenseBackupPair { return &licensehav1.LicenseBackupPair{} },
	group:        builder.FromPair,
	spec:         func(p *licensehav1.LicenseBackupPair) *licensehav1.GroupSpec { return &p.Spec.GroupSpec },
	status:       func(p *licensehav1.LicenseBackupPair) *licensehav1.GroupStatus { return &p.Status.GroupStatus },
	dissolvePlan: pairDissolvePlan,
	licenseSecrets: func(p *licensehav1.LicenseBackupPair) []string {
		return []string{p.Spec.Main.LicenseSecretRef.Name, p.Spec.Backup.LicenseSecretRef.Name}
	},
	configMapRequests: withDisconnectedState,
}

// allKinds names both kinds, triads first.
var allKinds = []kindNames{triadKind.kindNames, pairKind.kindNames}

// reconcileKind is the Reconcile of either kind: it reads the group and
// runs the shared reconcile (reconcileGroup) with the steps references,
// clientAccess and members; the first and the last are the kind's own.
func reconcileKind[T client.Object](ctx context.Context, r *groupReconciler, req ctrl.Request, k groupKind[T],
	references, members func(context.Context, T) (ctrl.Result, error)) (ctrl.Result, error) {
	obj := k.newObj()
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return reconcileGroup(ctx, r.Client, r.reader(), obj, groupFrame[T]{
		dissolve: k.dissolvePlan(obj),
		kind:     k.kind,
		steps: []step[T]{
			{"references", references},
			{"clientAccess", func(ctx context.Context, obj T) (ctrl.Result, error) {
				// Records ClientAccessReady (see reconcileClientAccess).
				return r.reconcileClientAccess(ctx, k.group(obj), obj.GetGeneration(), &k.status(obj).Conditions)
			}},
			{"members", members},
		},
		observed:   func() { k.status(obj).ObservedGeneration = obj.GetGeneration() },
		dissolving: func() { r.forgetCleared(obj) },
		recorder:   r.Recorder,
	})
}

// setupKind registers rec, the reconciler of kind k, and its watches: the
// group's own objects, and the Secrets and ConfigMaps its groups reference
// (as metadata, see referencingGroups).
func setupKind[T client.Object](mgr ctrl.Manager, r *groupReconciler, k groupKind[T], rec reconcile.Reconciler) error {
	configMaps := referencingGroups(r.Client, indexConfigMapRefs, k.kindNames)
	if k.configMapRequests != nil {
		configMaps = k.configMapRequests(r.Client, configMaps)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(k.newObj()).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.concurrency}).
		Named(k.controller).
		Owns(&corev1.Pod{}).
		Owns(&corev1.Service{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&coordinationv1.Lease{}, ctrlbuilder.WithPredicates(leaseHolderChanged())).
		WatchesMetadata(&corev1.Secret{},
			handler.EnqueueRequestsFromMapFunc(referencingGroups(r.Client, indexSecretRefs, k.kindNames))).
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(configMaps)).
		Complete(rec)
}

// fieldIndex is one field index SetupIndexes registers.
type fieldIndex struct {
	obj   client.Object
	field string
	fn    client.IndexerFunc
}

// kindIndexes are the field indexes over the groups of kind k: the Secrets
// and ConfigMaps they reference, and the names of their objects.
func kindIndexes[T client.Object](k groupKind[T]) []fieldIndex {
	return []fieldIndex{
		{k.newObj(), indexSecretRefs, func(o client.Object) []string {
			obj := o.(T)
			return groupSecretRefs(k.group(obj), k.spec(obj).Notifications, k.licenseSecrets(obj)...)
		}},
		{k.newObj(), indexConfigMapRefs, func(o client.Object) []string {
			obj := o.(T)
			return append(settingsRefs(k.spec(obj).SettingsRef), mountedNames(k.group(obj), "ConfigMap")...)
		}},
		{k.newObj(), indexChildren, func(o client.Object) []string {
			return childKeys(k.group(o.(T)))
		}},
	}
}

// groupSecretRefs lists every Secret a group reads: its licence Secrets,
// the notifications' credentials, the Secrets mounted into its servers and
// those of spec.clientAccess.
func groupSecretRefs(g builder.Group, n *licensehav1.NotificationsSpec, licenseSecrets ...string) []string {
	names := append(licenseSecrets, notificationSecretRefs(n)...)
	names = append(names, mountedNames(g, "Secret")...)
	return append(names, clientAccessSecretRefs(g.Name, g.ClientAccess)...)
}
