package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrlruntime "sigs.k8s.io/controller-runtime"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
)

// newToken returns a random admin token.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// listMemberPods returns a group's pods by member name.
func listMemberPods(ctx context.Context, c ctrl.Client, g builder.Group) (map[string]*corev1.Pod, error) {
	// Through the controller index: a label selector would be matched
	// against every pod of the namespace, thousands with many groups.
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods, ctrl.InNamespace(g.Namespace), ctrl.MatchingFields{indexController: string(g.Owner.UID)}); err != nil {
		return nil, fmt.Errorf("listing member pods: %w", err)
	}
	byMember := map[string]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		byMember[p.Labels[licensehav1.LabelMember]] = p
	}
	return byMember, nil
}

// reconcileGroupObjects creates or updates every object of a group except
// its pods: RBAC for the agents, the admin token, the synced state, the
// Lease, the Services, the NetworkPolicy, the PVCs and the agents'
// configuration. have is what inspectChildren found: each write goes only to
// a free name or to the group's own object.
func reconcileGroupObjects(ctx context.Context, c ctrl.Client, g builder.Group, opts builder.Options, cfg group.Config, trustedKeys []byte, have children) error {
	at := func(obj ctrl.Object, kind string) (found, bool) {
		f, ok := have[kind+"/"+obj.GetName()]
		return f, ok
	}
	for _, obj := range []ctrl.Object{builder.AgentServiceAccount(g), builder.AgentRole(g), builder.AgentRoleBinding(g)} {
		f, ok := at(obj, obj.GetObjectKind().GroupVersionKind().Kind)
		if err := apply(ctx, c, obj, f, ok); err != nil {
			return err
		}
	}
	adminName := group.AdminSecretName(g.Name)
	if _, ok := have["Secret/"+adminName]; !ok {
		token, err := newToken()
		if err != nil {
			return err
		}
		if err := createOnce(ctx, c, builder.AdminSecret(g, token), found{}, false, g.Owner); err != nil {
			return err
		}
	}
	for _, obj := range []ctrl.Object{builder.StateConfigMap(g), builder.StateSecret(g), builder.Lease(g)} {
		f, ok := at(obj, obj.GetObjectKind().GroupVersionKind().Kind)
		if err := createOnce(ctx, c, obj, f, ok, g.Owner); err != nil {
			return err
		}
	}
	for _, m := range g.Members {
		if pvc := builder.PVC(g, m); pvc != nil {
			f, ok := at(pvc, "PersistentVolumeClaim")
			if err := createOnce(ctx, c, pvc, f, ok, g.Owner); err != nil {
				return err
			}
		}
	}
	for _, svc := range builder.Services(g) {
		f, ok := at(svc, "Service")
		if err := apply(ctx, c, svc, f, ok); err != nil {
			return err
		}
	}
	if np := builder.NetworkPolicy(g, opts); np != nil {
		f, ok := at(np, "NetworkPolicy")
		if err := apply(ctx, c, np, f, ok); err != nil {
			return err
		}
	} else if err := removeNetworkPolicy(ctx, c, g); err != nil {
		return err
	}
	carried := carryPriorPeerTimeout(ctx, c, g, &cfg, time.Now())
	cm, err := builder.ConfigMap(g, cfg, trustedKeys)
	if err != nil {
		return err
	}
	for k, v := range carried {
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[k] = v
	}
	f, ok := at(cm, "ConfigMap")
	return apply(ctx, c, cm, f, ok)
}

// reconcileMemberPods creates missing member pods, deletes pods of members
// that left the spec (a replaced member), and rolls one outdated pod at a
// time: witness first, then standbys, the active last, and only while every
// member is ready so the triad never drops below quorum. Deleting the active
// pod makes its agent hand the role over before the pod goes.
func reconcileMemberPods(ctx context.Context, c ctrl.Client, g builder.Group, opts builder.Options, pods map[string]*corev1.Pod, holder string, have children) (conflicts []string, err error) {
	log := logf.FromContext(ctx)
	for name, p := range pods {
		if _, ok := g.Member(name); !ok && p.DeletionTimestamp == nil {
			log.Info("Removing pod of a member that left the spec", "pod", p.Name)
			if err := deleteExact(ctx, c, p); err != nil {
				return nil, err
			}
		}
	}
	allReady := true
	type outdated struct {
		pod  *corev1.Pod
		rank int
	}
	var stale []outdated
	for _, m := range g.Members {
		desired := builder.Pod(g, m, opts)
		p, ok := pods[m.Name]
		if m.Stopped {
			// Stopped on purpose: the pod goes (its agent hands the role
			// over and syncs once more on SIGTERM) and is not created again.
			if ok && p.DeletionTimestamp == nil {
				log.Info("Stopping member pod as the spec asks", "pod", p.Name)
				if err := deleteExact(ctx, c, p); err != nil {
					return nil, err
				}
			}
			continue
		}
		if _, mine := have["Pod/"+desired.Name]; !ok && mine {
			// The group's pod exists; the cache has not seen it yet.
			allReady = false
			continue
		}
		if !ok {
			log.Info("Creating member pod", "pod", desired.Name)
			err := c.Create(ctx, desired, ctrl.FieldOwner(FieldManager))
			if apierrors.IsAlreadyExists(err) {
				// A pod of that name that is not ours: the member would
				// belong to two groups. It is reported, never taken over.
				conflicts = append(conflicts, desired.Name)
				err = nil
			}
			if err != nil {
				return nil, fmt.Errorf("creating pod %s: %w", desired.Name, err)
			}
			allReady = false
			continue
		}
		if !group.PodReady(p) {
			allReady = false
		}
		if p.Annotations[builder.AnnotationTemplateHash] != desired.Annotations[builder.AnnotationTemplateHash] && p.DeletionTimestamp == nil {
			rank := 1
			switch {
			case p.Name == holder:
				rank = 2
			case m.Role == string(licensehav1.RoleTertiary):
				rank = 0
			}
			stale = append(stale, outdated{p, rank})
		}
	}
	if len(stale) == 0 || !allReady {
		return conflicts, nil
	}
	sort.Slice(stale, func(i, j int) bool {
		return stale[i].rank < stale[j].rank || (stale[i].rank == stale[j].rank && stale[i].pod.Name < stale[j].pod.Name)
	})
	next := stale[0].pod
	log.Info("Rolling member pod to the new template", "pod", next.Name)
	return conflicts, deleteExact(ctx, c, next)
}

// fixRoleLabels is the operator's belt and braces on top of the agents: a
// pod labelled active that does not hold the Lease loses the label, and a
// failing active is labelled unhealthy at once, so the Service never sends
// clients to a member that cannot or must not serve.
func fixRoleLabels(ctx context.Context, c ctrl.Client, pods map[string]*corev1.Pod, holder string) error {
	for _, p := range pods {
		role := p.Labels[licensehav1.LabelRole]
		want := role
		switch {
		case role == licensehav1.RoleLabelActive && podFailing(p):
			want = licensehav1.RoleLabelUnhealthy
		case role == licensehav1.RoleLabelActive && p.Name != holder:
			want = licensehav1.RoleLabelStandby
		}
		if want == role {
			continue
		}
		logf.FromContext(ctx).Info("Correcting role label", "pod", p.Name, "from", role, "to", want)
		base := p.DeepCopy()
		p.Labels[licensehav1.LabelRole] = want
		if err := c.Patch(ctx, p, ctrl.MergeFromWithOptions(base, ctrl.MergeFromWithOptimisticLock{}), ctrl.FieldOwner(FieldManager)); err != nil {
			return ctrl.IgnoreNotFound(err)
		}
	}
	return nil
}

// getLease returns the group's Lease, or nil when it does not exist yet.
func getLease(ctx context.Context, c ctrl.Client, g builder.Group) (*coordinationv1.Lease, error) {
	l := &coordinationv1.Lease{}
	err := c.Get(ctx, types.NamespacedName{Namespace: g.Namespace, Name: group.LeaseName(g.Name)}, l)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return l, err
}

// podAddresses maps member name to pod IP.
func podAddresses(pods map[string]*corev1.Pod) map[string]string {
	out := map[string]string{}
	for name, p := range pods {
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			out[name] = p.Status.PodIP
		}
	}
	return out
}

// conflictBlocker reports member pods that exist but belong to something
// else: such a member would be in two groups.
func conflictBlocker(conflicts []string) *blocker {
	return &blocker{reason: licensehav1.ReasonMemberInOtherGroup, failed: true,
		message: fmt.Sprintf("Pods %s exist but do not belong to this group; a member may not belong to another group. Rename the members or remove those pods", strings.Join(conflicts, ", "))}
}

// members is what the members step of either kind works from: whether the
// operator may write for the group (blocked nil), the group's objects found,
// its member pods and its Lease.
type members struct {
	g       builder.Group
	blocked *blocker
	have    children
	pods    map[string]*corev1.Pod
	lease   *coordinationv1.Lease
	holder  string
	res     ctrlruntime.Result
}

// beginMembers is the first half of the members step, the same for triads
// and pairs: while the licences are not valid, a deleted group of the same
// name left objects behind, a name the group needs belongs to someone else
// (prepareWrites) or client access is not ready, nothing is written, but the
// pods and the Lease are still read so that the status says what the
// members do. Otherwise the group's objects are brought to what config
// (built from the pods' addresses) asks for.
func (r *groupReconciler) beginMembers(ctx context.Context, obj ctrl.Object, g builder.Group, conds []metav1.Condition,
	settings *licensehav1.SettingsStatus, config func(addresses map[string]string) group.Config) (*members, error) {
	m := &members{g: g, blocked: licenceBlocker(meta.FindStatusCondition(conds, licensehav1.ConditionLicenseValid))}
	var err error
	if m.blocked == nil {
		if m.blocked, m.have, m.res, err = r.prepareWrites(ctx, obj, g); err != nil {
			return nil, err
		}
	}
	if m.blocked == nil {
		m.blocked = clientAccessBlocker(meta.FindStatusCondition(conds, licensehav1.ConditionClientAccessReady))
	}
	if m.blocked == nil {
		if m.blocked, err = volumeBlocker(ctx, r.APIReader, g); err != nil {
			return nil, err
		}
		if m.blocked != nil {
			m.res.RequeueAfter = blockedRequeue // a PVC's label change is not watched
		}
	}
	if m.pods, err = listMemberPods(ctx, r.Client, g); err != nil {
		return nil, err
	}
	if m.blocked == nil {
		cfg := config(podAddresses(m.pods))
		r.groupSettings(ctx, g, obj.GetNamespace()+"/"+obj.GetName(), settings, &cfg)
		if err := reconcileGroupObjects(ctx, r.Client, g, r.Options, cfg, r.TrustedKeys, m.have); err != nil {
			return nil, err
		}
	}
	if m.lease, err = getLease(ctx, r.Client, g); err != nil {
		return nil, err
	}
	m.holder, _ = leaseHolder(m.lease)
	return m, nil
}

// reconcilePods creates and replaces the member pods when the operator may
// write; a pod name taken by someone else blocks the group.
func (r *groupReconciler) reconcilePods(ctx context.Context, m *members) error {
	if m.blocked != nil {
		return nil
	}
	conflicts, err := reconcileMemberPods(ctx, r.Client, m.g, r.Options, m.pods, m.holder, m.have)
	if err != nil {
		return err
	}
	if len(conflicts) > 0 {
		m.blocked = conflictBlocker(conflicts)
	}
	return nil
}
