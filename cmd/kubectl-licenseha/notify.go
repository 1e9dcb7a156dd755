package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

func newNotifyCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Test a group's notifications",
	}
	cmd.AddCommand(newNotifyTestCmd(o))
	return cmd
}

// notifyResult is one channel's result of a test notification.
type notifyResult struct {
	Channel string
	OK      bool
	Message string
}

func newNotifyTestCmd(o *Options) *cobra.Command {
	var w *waitFlags
	cmd := &cobra.Command{
		Use:   "test GROUP",
		Short: "Send a test notification through every channel of a group's spec.notifications and report each result",
		Long: `Ask the operator to send a test notification (reason NotificationTest) through every channel of
the group's spec.notifications, webhook and e-mail, and report per channel whether it was delivered
or why not.

The operator sends it, not this plugin: the operator holds the credentials and reaches the webhook
and the mail relay from where real notifications come from, under the same target policy
(--notify-allow-internal), so the test proves what a real notification would do. The request is the
annotation licenseha.io/notify-test=NONCE on the group; the operator sends once per nonce, records
licenseha.io/notify-test-sent=NONCE, and reports each channel in an Event labelled
licenseha.io/notify-test=NONCE (kubectl get events -l licenseha.io/notify-test=NONCE).`,
		Example: `  kubectl licenseha notify test plant-a
  kubectl licenseha notify test plant-b --timeout 2m`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(o, true, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, name := cmd.Context(), args[0]
			k, g, err := o.kubeGroup(ctx, name)
			if err != nil {
				return err
			}
			obj := g.obj
			channels := notifyChannels(g.notifications)
			if len(channels) == 0 {
				return fmt.Errorf("%s %s/%s has no spec.notifications.webhook or spec.notifications.email: nothing to test", g.kind, k.ns, name)
			}
			nonce, err := newNonce()
			if err != nil {
				return err
			}
			orig := obj.DeepCopyObject().(client.Object)
			annotations := obj.GetAnnotations()
			if annotations == nil {
				annotations = map[string]string{}
			}
			annotations[licensehav1.AnnotationNotifyTest] = nonce
			obj.SetAnnotations(annotations)
			if err := k.c.Patch(ctx, obj, client.MergeFrom(orig)); err != nil {
				return fmt.Errorf("annotating %s/%s: %w", k.ns, name, err)
			}
			fmt.Fprintf(o.Out, "%s/%s: asked the operator for test notification %s (%s)\n", k.ns, name, nonce, strings.Join(channels, ", "))
			if !w.wait {
				fmt.Fprintf(o.Out, "See the results with: kubectl get events -n %s -l %s=%s\n", k.ns, licensehav1.LabelNotifyTest, nonce)
				return nil
			}
			results, err := k.waitNotifyTest(ctx, obj, nonce, channels, w.timeout, func(msg string) { fmt.Fprintln(o.Out, "  "+msg) })
			printNotifyResults(o.Out, results)
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range results {
				if !r.OK {
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("the test notification failed on %d of %d channel(s)", failed, len(results))
			}
			return nil
		},
	}
	w = addWaitFlags(cmd, "wait for every channel's result", time.Minute)
	return cmd
}

// notifyChannels lists the channels spec configures.
func notifyChannels(spec *licensehav1.NotificationsSpec) []string {
	var out []string
	if spec != nil && spec.Webhook != nil {
		out = append(out, "webhook")
	}
	if spec != nil && spec.Email != nil {
		out = append(out, "email")
	}
	return out
}

// newNonce is a fresh, readable label value: the time and randomness.
func newNonce() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return time.Now().UTC().Format("20060102t150405") + "-" + hex.EncodeToString(b), nil
}

// waitNotifyTest polls until the operator reported a result for every
// channel of the test notification nonce; progress reports each step once.
func (k *kube) waitNotifyTest(ctx context.Context, obj client.Object, nonce string, channels []string, timeout time.Duration,
	progress func(string)) ([]notifyResult, error) {
	pickedUp := false
	var results []notifyResult
	err := wait.PollUntilContextTimeout(ctx, pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		if !pickedUp {
			cur := obj.DeepCopyObject().(client.Object)
			if err := k.get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
				if apierrors.IsNotFound(err) {
					return false, fmt.Errorf("%s/%s was deleted while waiting", k.ns, obj.GetName())
				}
				return false, nil // transient: keep trying until the timeout
			}
			if cur.GetAnnotations()[licensehav1.AnnotationNotifyTestSent] == nonce {
				pickedUp = true
				progress("the operator is sending it")
			}
		}
		var list eventsv1.EventList
		if err := k.list(ctx, &list, client.InNamespace(k.ns), client.MatchingLabels{licensehav1.LabelNotifyTest: nonce}); err != nil {
			return false, nil
		}
		results = notifyResults(list.Items, obj.GetUID(), nonce)
		if len(results) > 0 && !pickedUp {
			pickedUp = true
		}
		got := map[string]bool{}
		for _, r := range results {
			got[r.Channel] = true
		}
		if got["none"] {
			return true, nil
		}
		for _, c := range channels {
			if !got[c] {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil && wait.Interrupted(err) && ctx.Err() == nil {
		if !pickedUp {
			return results, fmt.Errorf("the operator did not pick up test notification %s within %s: is it running, and does it watch namespace %s? "+
				"The annotation %s stays on the group; the operator sends it when it gets to it", nonce, timeout, k.ns, licensehav1.AnnotationNotifyTest)
		}
		return results, fmt.Errorf("no result from every channel within %s; see kubectl get events -n %s -l %s=%s and the operator's log",
			timeout, k.ns, licensehav1.LabelNotifyTest, nonce)
	}
	return results, err
}

// notifyResults picks the operator's reports of test notification nonce
// about the group uid, one per channel, sorted by channel.
func notifyResults(items []eventsv1.Event, uid types.UID, nonce string) []notifyResult {
	byChannel := map[string]notifyResult{}
	for _, e := range items {
		if e.Labels[licensehav1.LabelNotifyTest] != nonce || (uid != "" && e.Regarding.UID != uid) {
			continue
		}
		channel := e.Labels[licensehav1.LabelNotifyChannel]
		msg := strings.TrimPrefix(e.Note, "Test notification "+nonce+": ")
		byChannel[channel] = notifyResult{Channel: channel, OK: e.Type == corev1.EventTypeNormal, Message: msg}
	}
	out := make([]notifyResult, 0, len(byChannel))
	for _, r := range byChannel {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Channel < out[j].Channel })
	return out
}

func printNotifyResults(w io.Writer, results []notifyResult) {
	for _, r := range results {
		status := "OK"
		if !r.OK {
			status = "FAILED"
		}
		fmt.Fprintf(w, "%-8s %-6s %s\n", r.Channel+":", status, r.Message)
	}
}
