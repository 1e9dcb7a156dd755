package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

func newReplaceMemberCmd(o *Options) *cobra.Command {
	var w *waitFlags
	cmd := &cobra.Command{
		Use:   "replace-member TRIAD MEMBER",
		Short: "Replace a triad member's pod (and volume) with a fresh one that starts from the synced state",
		Long: `Annotate the LicenseTriad with licenseha.io/replace-member=MEMBER. The operator replaces that
member's pod (and volume) with a fresh one that starts from the group's synced state; no relicensing
is needed. With --wait, wait until the member's pod has been recreated (new UID) and is Ready.`,
		Example: `  kubectl licenseha replace-member plant-a c
  kubectl licenseha replace-member plant-a c --wait=false`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeTriadThenMember(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := o.kube()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			name, member := args[0], args[1]
			podName := group.PodName(name, member)
			var oldUID types.UID
			// The annotation is patched with the resourceVersion read, so a
			// concurrent request to replace another member is never
			// overwritten: on a conflict the triad is read and checked again.
			_, _, err = patchRetry(ctx, k, fmt.Sprintf("annotating %s/%s", k.ns, name),
				func() (*licensehav1.LicenseTriad, error) { return k.triad(ctx, name) },
				func(t *licensehav1.LicenseTriad) (bool, error) {
					var names []string
					found := false
					for _, m := range t.Spec.Members {
						names = append(names, m.Name)
						found = found || m.Name == member
					}
					if !found {
						return false, fmt.Errorf("%s/%s has no member %q; its members are %s", k.ns, name, member, strings.Join(names, ", "))
					}
					if pending := t.Annotations[licensehav1.AnnotationReplaceMember]; pending != "" && pending != member {
						return false, fmt.Errorf("%s/%s: the replacement of member %q is still pending (annotation %s); wait for it to finish, or remove the annotation to cancel it",
							k.ns, name, pending, licensehav1.AnnotationReplaceMember)
					}
					var pod corev1.Pod
					switch err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: podName}, &pod); {
					case err == nil:
						oldUID = pod.UID
					case !apierrors.IsNotFound(err):
						return false, err
					}
					if t.Annotations == nil {
						t.Annotations = map[string]string{}
					}
					t.Annotations[licensehav1.AnnotationReplaceMember] = member
					return true, nil
				})
			if err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "%s/%s: annotated %s=%s; the operator replaces pod %s\n", k.ns, name,
				licensehav1.AnnotationReplaceMember, member, podName)
			if !w.wait {
				return nil
			}
			fmt.Fprintf(o.Out, "Waiting up to %s for pod %s to be recreated and ready...\n", w.timeout, podName)
			return k.waitReplaced(ctx, podName, oldUID, w.timeout, func(msg string) { fmt.Fprintln(o.Out, "  "+msg) })
		},
	}
	w = addWaitFlags(cmd, "wait until the member's pod is recreated and ready", 10*time.Minute)
	return cmd
}

// waitReplaced polls until the pod exists with a UID other than oldUID and
// is ready; progress reports each step once.
func (k *kube) waitReplaced(ctx context.Context, podName string, oldUID types.UID, timeout time.Duration, progress func(string)) error {
	lastMsg := ""
	report := func(msg string) {
		if msg != lastMsg {
			progress(msg)
			lastMsg = msg
		}
	}
	err := wait.PollUntilContextTimeout(ctx, pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		var pod corev1.Pod
		err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: podName}, &pod)
		switch {
		case apierrors.IsNotFound(err):
			report("old pod gone; waiting for the new one")
			return false, nil
		case err != nil:
			return false, nil // transient: keep trying until the timeout
		case pod.UID == oldUID:
			if pod.DeletionTimestamp != nil {
				report("old pod terminating")
			}
			return false, nil
		case !group.PodReady(&pod):
			report(fmt.Sprintf("new pod %s created; waiting for it to be ready", pod.UID))
			return false, nil
		}
		report(fmt.Sprintf("new pod %s is ready", pod.UID))
		return true, nil
	})
	if err != nil && wait.Interrupted(err) && ctx.Err() == nil {
		return fmt.Errorf("pod %s/%s was not replaced and ready within %s (last: %s); see kubectl licenseha status", k.ns, podName, timeout, orDash(lastMsg))
	}
	return err
}
