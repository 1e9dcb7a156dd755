package controllers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/pkg/notify"
)

// Event reasons of notifications.
const (
	// EventNotificationFailed is recorded when a notification cannot be sent.
	EventNotificationFailed = "NotificationFailed"
	// EventNotificationTest is the reason of a test notification (kubectl
	// licenseha notify test), as the channels receive it.
	EventNotificationTest = "NotificationTest"
	// EventNotificationTestSent and EventNotificationTestFailed report a
	// test notification's result, one Event per channel, labelled with
	// licensehav1.LabelNotifyTest (the nonce) and LabelNotifyChannel.
	EventNotificationTestSent   = "NotificationTestSent"
	EventNotificationTestFailed = "NotificationTestFailed"
)

// eventEmitter returns a function that records an Event on a group and,
// for the reasons in notifyOn, sends the group's notifications: ev with the
// reason and the Event's note as its message.
//
// Each transition is emitted once: the transitions are derived from the
// status the reconcile started from, and a reconcile that starts from the
// same stored group (the same resourceVersion: a read from a cache that
// has not seen the last status write yet, or a retry after a failed write)
// would derive them again. Such repeats are dropped (see notifier.first).
func (r *groupReconciler) eventEmitter(ctx context.Context, obj client.Object, spec *licensehav1.NotificationsSpec,
	ev notify.Event, notifyOn ...string) func(typ, reason, action, note string) {
	return func(typ, reason, action, note string) {
		if !r.notifier.first(obj, reason+"\x00"+ev.Member+"\x00"+note) {
			return
		}
		if r.Recorder != nil {
			r.Recorder.Eventf(obj, nil, typ, reason, action, "%s", note)
		}
		if slices.Contains(notifyOn, reason) {
			e := ev
			e.Reason, e.Message = reason, note
			r.notifier.send(ctx, obj, spec, e, nil)
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

	// emitted holds, per group UID, the resourceVersion the last
	// transitions were derived from and the transitions emitted for it.
	mu      sync.Mutex
	emitted map[types.UID]emittedAt
}

type emittedAt struct {
	resourceVersion string
	keys            map[string]bool
}

// first reports whether the transition key has not been emitted yet for
// the group as stored at its current resourceVersion, and remembers it.
// Objects without a UID (not from an API server) are never deduplicated.
func (n *notifier) first(obj client.Object, key string) bool {
	if n == nil || obj.GetUID() == "" {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.emitted == nil {
		n.emitted = map[types.UID]emittedAt{}
	}
	at := n.emitted[obj.GetUID()]
	if at.resourceVersion != obj.GetResourceVersion() {
		at = emittedAt{resourceVersion: obj.GetResourceVersion(), keys: map[string]bool{}}
		n.emitted[obj.GetUID()] = at
	}
	if at.keys[key] {
		return false
	}
	at.keys[key] = true
	return true
}

// send delivers e to every channel of spec, each in its own goroutine.
// done, when set, receives each channel's result instead of the failure
// being recorded as a NotificationFailed Event.
func (n *notifier) send(ctx context.Context, obj client.Object, spec *licensehav1.NotificationsSpec, e notify.Event,
	done func(channel string, err error)) {
	if spec == nil || n == nil {
		return
	}
	log := logf.FromContext(ctx).WithValues("reason", e.Reason)
	e.Time = time.Now()
	ns := obj.GetNamespace()
	// secretKey reads one key of a referenced Secret; the error names the
	// field and the Secret, never the content.
	secretKey := func(ctx context.Context, field string, ref *licensehav1.LocalObjectReference, key string) (string, error) {
		if ref == nil {
			return "", nil
		}
		s := &corev1.Secret{}
		if err := n.reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				return "", fmt.Errorf("%s: Secret %q not found", field, ref.Name)
			}
			return "", fmt.Errorf("%s: reading Secret %q: %w", field, ref.Name, err)
		}
		v, ok := s.Data[key]
		if !ok {
			return "", fmt.Errorf("%s: Secret %q has no key %q", field, ref.Name, key)
		}
		return string(v), nil
	}
	deliver := func(channel string, fn func(ctx context.Context) error) {
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			err := fn(ctx)
			if err != nil {
				log.Error(err, "Sending a notification failed", "channel", channel)
				notificationFailures.WithLabelValues(channel).Inc()
			}
			switch {
			case done != nil:
				done(channel, err)
			case err != nil && n.recorder != nil:
				n.recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventNotificationFailed, "Notify",
					"Sending the %s notification for %s failed", channel, e.Reason)
			}
		}()
	}
	if w := spec.Webhook; w != nil {
		deliver("webhook", func(ctx context.Context) error {
			token, err := secretKey(ctx, "spec.notifications.webhook.secretRef", w.SecretRef, "token")
			if err != nil {
				return err
			}
			return notify.Webhook{URL: w.URL, Token: token, Policy: n.policy}.Send(ctx, e)
		})
	}
	if m := spec.Email; m != nil {
		deliver("email", func(ctx context.Context) error {
			const creds = "spec.notifications.email.credentialsSecretRef"
			user, err := secretKey(ctx, creds, m.CredentialsSecretRef, "username")
			if err != nil {
				return err
			}
			password, err := secretKey(ctx, creds, m.CredentialsSecretRef, "password")
			if err != nil {
				return err
			}
			ca, err := secretKey(ctx, "spec.notifications.email.caSecretRef", m.CASecretRef, "ca.crt")
			if err != nil {
				return err
			}
			return notify.Email{Host: m.SMTPHost, Port: int(m.Port), From: m.From, To: m.To, TLS: emailTLS(m),
				Username: user, Password: password, RootCAs: []byte(ca), Policy: n.policy}.Send(ctx, e)
		})
	}
}

// emailTLS is the TLS mode in effect: tls when set, else the deprecated
// startTLS (unset or true: StartTLS, false: None).
func emailTLS(m *licensehav1.EmailNotification) notify.TLSMode {
	switch {
	case m.TLS != "":
		return notify.TLSMode(m.TLS)
	case m.StartTLS != nil && !*m.StartTLS:
		return notify.NoTLS
	}
	return notify.StartTLS
}

// validNonce is what a test notification's nonce may be: a label value.
var validNonce = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

// sendTestNotification carries out the licenseha.io/notify-test annotation
// (kubectl licenseha notify test): once per nonce, it sends a test event
// through every channel of spec and records each channel's result as an
// Event labelled with the nonce and the channel. The operator sends it, not
// the plugin, because the operator holds the credentials and sits where the
// notifications come from: the test proves what a real notification would
// do. The nonce is recorded in licenseha.io/notify-test-sent, with the
// resourceVersion read as precondition, before anything is sent: a
// reconcile that read the group before that write (a stale cache) fails the
// write and sends nothing, and a GitOps tool re-applying the same nonce
// sends nothing again.
func (r *groupReconciler) sendTestNotification(ctx context.Context, obj client.Object, kind string, spec *licensehav1.NotificationsSpec) {
	nonce := obj.GetAnnotations()[licensehav1.AnnotationNotifyTest]
	if nonce == "" || nonce == obj.GetAnnotations()[licensehav1.AnnotationNotifyTestSent] {
		return
	}
	log := logf.FromContext(ctx).WithValues("nonce", nonce)
	marked := obj.DeepCopyObject().(client.Object)
	annotations := marked.GetAnnotations()
	annotations[licensehav1.AnnotationNotifyTestSent] = nonce
	marked.SetAnnotations(annotations)
	if err := r.Patch(ctx, marked, client.MergeFromWithOptions(obj, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager)); err != nil {
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			log.Error(err, "Recording the test notification failed; it is not sent")
		}
		return
	}
	if !validNonce.MatchString(nonce) {
		if r.Recorder != nil {
			r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventNotificationTestFailed, "NotifyTest",
				"%s must be 1-63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit; no test notification sent",
				licensehav1.AnnotationNotifyTest)
		}
		return
	}
	report := func(channel string, err error) {
		typ, reason, note := corev1.EventTypeNormal, EventNotificationTestSent,
			fmt.Sprintf("Test notification %s: the %s notification was delivered", nonce, channel)
		if err != nil {
			msg := err.Error()
			if spec != nil && spec.Webhook != nil {
				// Events name no URL: its path may be the secret.
				msg = strings.ReplaceAll(msg, notify.Redact(spec.Webhook.URL), "spec.notifications.webhook.url")
			}
			typ, reason, note = corev1.EventTypeWarning, EventNotificationTestFailed,
				fmt.Sprintf("Test notification %s: sending the %s notification failed: %s", nonce, channel, msg)
		}
		if err := r.recordTestResult(ctx, obj, kind, nonce, channel, typ, reason, note); err != nil {
			log.Error(err, "Recording the result of a test notification failed", "channel", channel)
		}
	}
	if spec == nil || (spec.Webhook == nil && spec.Email == nil) {
		report("none", errors.New("spec.notifications names no webhook and no email"))
		return
	}
	log.Info("Sending a test notification")
	r.notifier.send(ctx, obj, spec, notify.Event{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(),
		Reason: EventNotificationTest,
		Message: fmt.Sprintf("Test notification %s for %s %s/%s, requested with kubectl licenseha notify test: its notifications reach you.",
			nonce, kind, obj.GetNamespace(), obj.GetName())}, report)
}

// recordTestResult creates the Event that reports one channel's result of a
// test notification. It is created directly rather than through the event
// recorder, which folds Events of the same reason into one series whatever
// their note, and labelled, so kubectl licenseha notify test finds it by
// nonce.
func (r *groupReconciler) recordTestResult(ctx context.Context, obj client.Object, kind, nonce, channel, typ, reason, note string) error {
	if len(note) > 1024 {
		note = note[:1021] + "..."
	}
	host, _ := os.Hostname()
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: obj.GetName() + "-notify-test-", Namespace: obj.GetNamespace(),
			Labels: map[string]string{licensehav1.LabelNotifyTest: nonce, licensehav1.LabelNotifyChannel: channel}},
		EventTime:           metav1.NowMicro(),
		ReportingController: FieldManager,
		ReportingInstance:   truncate(FieldManager+"-"+host, 128),
		Action:              "NotifyTest",
		Reason:              reason,
		Type:                typ,
		Note:                note,
		Regarding: corev1.ObjectReference{APIVersion: licensehav1.GroupVersion.String(), Kind: kind,
			Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID()},
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return r.Create(ctx, ev, client.FieldOwner(FieldManager))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
