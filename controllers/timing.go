package controllers

import (
	"context"
	"encoding/json"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
)

// annotationPriorUntil records, on the group's configuration ConfigMap,
// until when the prior peer timeout is carried (RFC 3339, the operator's
// own clock: it only ends the carry, it orders nothing between members).
const annotationPriorUntil = "licenseha.io/prior-peer-timeout-until"

// priorCarry is how long a peer timeout stays in the configuration after an
// edit replaced it: far longer than any grant given under it can bind
// (a few peer timeouts), so a member that restarts meanwhile waits out its
// former incarnation's grants in its quiet period.
const priorCarry = 10 * time.Minute

// carryPriorPeerTimeout sets cfg.PriorPeerTimeoutMillis from the
// configuration the agents run with now: after an edit of the peer timeout
// the longer of old and new stays in force for restarted members' quiet
// periods for priorCarry. It returns the annotations for the ConfigMap.
func carryPriorPeerTimeout(ctx context.Context, c ctrl.Client, g builder.Group, cfg *group.Config, now time.Time) map[string]string {
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, ctrl.ObjectKey{Namespace: g.Namespace, Name: group.ConfigName(g.Name)}, cm); err != nil {
		return nil
	}
	var cur group.Config
	if json.Unmarshal([]byte(cm.Data[group.ConfigKey]), &cur) != nil || cur.PeerTimeoutMillis == 0 {
		return nil
	}
	prior, until := cur.PriorPeerTimeoutMillis, time.Time{}
	if t, err := time.Parse(time.RFC3339, cm.Annotations[annotationPriorUntil]); err == nil {
		until = t
	}
	if cur.PeerTimeoutMillis != cfg.PeerTimeoutMillis {
		prior, until = max(prior, cur.PeerTimeoutMillis), now.Add(priorCarry)
	}
	if prior <= cfg.PeerTimeoutMillis || !now.Before(until) {
		return nil
	}
	cfg.PriorPeerTimeoutMillis = prior
	return map[string]string{annotationPriorUntil: until.UTC().Format(time.RFC3339)}
}
