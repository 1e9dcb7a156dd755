package controllers

import (
	"context"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/pkg/notify"
)

// EventNotificationFailed is recorded when a notification cannot be sent.
const EventNotificationFailed = "NotificationFailed"

// eventEmitter returns a function that records an Event on a group and,
// for the reasons in notifyOn, sends the group's notifications: ev with the
// reason and the Event's note as its message.
func (r *groupReconciler) eventEmitter(ctx context.Context, obj client.Object, spec *licensehav1.NotificationsSpec,
	ev notify.Event, notifyOn ...string) func(typ, reason, action, note string) {
	return func(typ, reason, action, note string) {
		if r.Recorder != nil {
			r.Recorder.Eventf(obj, nil, typ, reason, action, "%s", note)
		}
		if slices.Contains(notifyOn, reason) {
			e := ev
			e.Reason, e.Message = reason, note
			r.notifier.send(ctx, obj, spec, e)
		}
	}
}

// notifier sends a group's notifications in the background, so a slow
// webhook or mail relay never holds up a reconcile. Credentials are read
// from their Secrets at send time and never logged; errors name a webhook
// without its credentials or query (notify.Redact), and Events name neither.
// policy decides which targets may be reached.
type notifier struct {
	reader   client.Reader
	recorder events.EventRecorder
	policy   notify.Policy
}

// send delivers e to every channel of spec, each in its own goroutine.
func (n *notifier) send(ctx context.Context, obj client.Object, spec *licensehav1.NotificationsSpec, e notify.Event) {
	if spec == nil {
		return
	}
	log := logf.FromContext(ctx).WithValues("reason", e.Reason)
	e.Time = time.Now()
	ns := obj.GetNamespace()
	secretKey := func(ctx context.Context, ref *licensehav1.LocalObjectReference, key string) string {
		if ref == nil {
			return ""
		}
		s := &corev1.Secret{}
		if err := n.reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, s); err != nil {
			log.Error(err, "Reading a notification Secret failed", "secret", ref.Name)
			return ""
		}
		return string(s.Data[key])
	}
	deliver := func(channel string, fn func(ctx context.Context) error) {
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := fn(ctx); err != nil {
				log.Error(err, "Sending a notification failed", "channel", channel)
				notificationFailures.WithLabelValues(channel).Inc()
				if n.recorder != nil {
					n.recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventNotificationFailed, "Notify",
						"Sending the %s notification for %s failed", channel, e.Reason)
				}
			}
		}()
	}
	if w := spec.Webhook; w != nil {
		deliver("webhook", func(ctx context.Context) error {
			return notify.Webhook{URL: w.URL, Token: secretKey(ctx, w.SecretRef, "token"), Policy: n.policy}.Send(ctx, e)
		})
	}
	if m := spec.Email; m != nil {
		deliver("email", func(ctx context.Context) error {
			return notify.Email{Host: m.SMTPHost, Port: int(m.Port), From: m.From, To: m.To,
				StartTLS: m.StartTLS == nil || *m.StartTLS,
				Username: secretKey(ctx, m.CredentialsSecretRef, "username"),
				Password: secretKey(ctx, m.CredentialsSecretRef, "password"), Policy: n.policy}.Send(ctx, e)
		})
	}
}
