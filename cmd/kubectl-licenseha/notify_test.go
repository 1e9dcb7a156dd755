package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// The operator accepts a nonce only as a label value.
func TestNonceIsALabelValue(t *testing.T) {
	label := regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	seen := map[string]bool{}
	for range 20 {
		n, err := newNonce()
		if err != nil {
			t.Fatal(err)
		}
		if !label.MatchString(n) {
			t.Fatalf("nonce %q is not a label value", n)
		}
		if seen[n] {
			t.Fatalf("nonce %q repeated", n)
		}
		seen[n] = true
	}
}

func TestNotifyResultsPickTheNonceAndGroup(t *testing.T) {
	ev := func(nonce, channel, typ, note, uid string) eventsv1.Event {
		return eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
			licensehav1.LabelNotifyTest: nonce, licensehav1.LabelNotifyChannel: channel}},
			Type: typ, Note: note, Regarding: corev1.ObjectReference{UID: types.UID("uid-" + uid)}}
	}
	got := notifyResults([]eventsv1.Event{
		ev("n1", "webhook", "Normal", "Test notification n1: the webhook notification was delivered", "a"),
		ev("n1", "email", "Warning", "Test notification n1: sending the email notification failed: smtp auth: 535", "a"),
		ev("n0", "email", "Normal", "Test notification n0: the email notification was delivered", "a"), // an older test
		ev("n1", "email", "Normal", "Test notification n1: the email notification was delivered", "b"), // another group
	}, "uid-a", "n1")
	want := []notifyResult{
		{Channel: "email", OK: false, Message: "sending the email notification failed: smtp auth: 535"},
		{Channel: "webhook", OK: true, Message: "the webhook notification was delivered"},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("results = %+v, want %+v", got, want)
	}
}

// answerNotifyTest plays the operator: for the next nonce on the group, it
// records the nonce as sent and reports each channel as results says.
func answerNotifyTest(t *testing.T, ns, name string, results map[string]string) (stop func()) {
	return playOperator(t, func(ctx context.Context) bool {
		var p licensehav1.LicenseBackupPair
		if kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p) != nil {
			return false
		}
		nonce := p.Annotations[licensehav1.AnnotationNotifyTest]
		if nonce == "" || p.Annotations[licensehav1.AnnotationNotifyTestSent] == nonce {
			return false
		}
		orig := p.DeepCopy()
		p.Annotations[licensehav1.AnnotationNotifyTestSent] = nonce
		if kc.Patch(ctx, &p, client.MergeFrom(orig)) != nil {
			return false
		}
		for channel, failure := range results {
			typ, reason, note := "Normal", "NotificationTestSent", "Test notification "+nonce+": the "+channel+" notification was delivered"
			if failure != "" {
				typ, reason, note = "Warning", "NotificationTestFailed", "Test notification "+nonce+": sending the "+channel+" notification failed: "+failure
			}
			e := &eventsv1.Event{
				ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-notify-test-", Namespace: ns,
					Labels: map[string]string{licensehav1.LabelNotifyTest: nonce, licensehav1.LabelNotifyChannel: channel}},
				EventTime: metav1.NowMicro(), ReportingController: "licenseha-operator", ReportingInstance: "test",
				Action: "NotifyTest", Reason: reason, Type: typ, Note: note,
				Regarding: corev1.ObjectReference{APIVersion: "licenseha.io/v1alpha1", Kind: "LicenseBackupPair", Namespace: ns, Name: name, UID: p.UID},
			}
			if err := kc.Create(ctx, e); err != nil {
				t.Errorf("creating the result Event: %v", err)
			}
		}
		return true
	})
}

func TestEnvNotifyTest(t *testing.T) {
	startEnv(t)
	ctx := context.Background()
	ns := newNS(t)
	pair := createPair(t, ns, "plant-b")

	// Without notifications there is nothing to test, and nothing is asked.
	if _, err := kubectl(t, ns, "notify", "test", "plant-b"); err == nil || !strings.Contains(err.Error(), "nothing to test") {
		t.Fatalf("notify test without notifications = %v", err)
	}
	if _, err := kubectl(t, ns, "notify", "test", "plant-x"); err == nil || !strings.Contains(err.Error(), "kubectl get licenseha -A") {
		t.Fatalf("notify test of a missing group = %v", err)
	}
	var got licensehav1.LicenseBackupPair
	if err := kc.Get(ctx, client.ObjectKeyFromObject(pair), &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Annotations[licensehav1.AnnotationNotifyTest]; ok {
		t.Fatalf("a group without notifications was annotated")
	}

	got.Spec.Notifications = &licensehav1.NotificationsSpec{
		Webhook: &licensehav1.WebhookNotification{URL: "https://hooks.example.com/x"},
		Email:   &licensehav1.EmailNotification{SMTPHost: "smtp.example.com", From: "a@example.com", To: []string{"b@example.com"}},
	}
	if err := kc.Update(ctx, &got); err != nil {
		t.Fatal(err)
	}

	// Both channels deliver.
	stop := answerNotifyTest(t, ns, "plant-b", map[string]string{"webhook": "", "email": ""})
	out, err := kubectl(t, ns, "notify", "test", "plant-b", "--timeout", "20s")
	stop()
	if err != nil {
		t.Fatalf("notify test: %v\n%s", err, out)
	}
	for _, want := range []string{"asked the operator for test notification", "(webhook, email)", "the operator is sending it",
		"email:   OK     the email notification was delivered", "webhook: OK     the webhook notification was delivered"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if err := kc.Get(ctx, client.ObjectKeyFromObject(pair), &got); err != nil {
		t.Fatal(err)
	}
	first := got.Annotations[licensehav1.AnnotationNotifyTest]
	if first == "" || got.Annotations[licensehav1.AnnotationNotifyTestSent] != first {
		t.Fatalf("annotations after the test: %v", got.Annotations)
	}

	// The mail relay refuses: the command names the error and fails; a new
	// nonce each time.
	stop = answerNotifyTest(t, ns, "plant-b", map[string]string{"webhook": "", "email": "smtp auth: 535 5.7.8 Authentication credentials invalid"})
	out, err = kubectl(t, ns, "notify", "test", "plant-b", "--timeout", "20s")
	stop()
	if err == nil || !strings.Contains(err.Error(), "failed on 1 of 2 channel(s)") {
		t.Fatalf("notify test with a failing relay = %v\n%s", err, out)
	}
	if !strings.Contains(out, "email:   FAILED sending the email notification failed: smtp auth: 535") {
		t.Errorf("output lacks the e-mail failure:\n%s", out)
	}
	if err := kc.Get(ctx, client.ObjectKeyFromObject(pair), &got); err != nil {
		t.Fatal(err)
	}
	if got.Annotations[licensehav1.AnnotationNotifyTest] == first {
		t.Errorf("the second test reused the nonce %s", first)
	}

	// No operator: the wait ends with a clear message.
	_, err = kubectl(t, ns, "notify", "test", "plant-b", "--timeout", "300ms")
	if err == nil || !strings.Contains(err.Error(), "did not pick up") {
		t.Fatalf("notify test without an operator = %v", err)
	}
}
