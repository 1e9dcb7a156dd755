package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// Operations on a backup pair's sides: a planned switchover (spec.preferredSide)
// and stopping or resuming one side (spec.main|backup.stopped). Each is a
// patch of the pair's spec carrying the resourceVersion it was computed from;
// the operator and the agents do the rest.

// pairSide checks a side name.
func pairSide(s string) (licensehav1.PairSide, error) {
	switch licensehav1.PairSide(s) {
	case licensehav1.SideMain, licensehav1.SideBackup:
		return licensehav1.PairSide(s), nil
	}
	return "", fmt.Errorf("--side/--to must be main or backup, not %q", s)
}

// patchPair reads the pair, lets change edit it (false: nothing to do) and
// writes it with optimistic locking, retrying on conflicts.
func (k *kube) patchPair(ctx context.Context, name string, change func(p *licensehav1.LicenseBackupPair) (bool, error)) (*licensehav1.LicenseBackupPair, bool, error) {
	return patchRetry(ctx, k, fmt.Sprintf("changing %s/%s", k.ns, name),
		func() (*licensehav1.LicenseBackupPair, error) { return k.pair(ctx, name) },
		func(p *licensehav1.LicenseBackupPair) (bool, error) {
			changed, err := change(p)
			if err != nil {
				return false, fmt.Errorf("%s/%s: %w", k.ns, name, err)
			}
			return changed, nil
		})
}

// switchoverPair makes side the pair's preferred side and waits until it
// serves.
func switchoverPair(ctx context.Context, k *kube, out io.Writer, name, to string, waitFor, dryRun bool, timeout time.Duration) error {
	side, err := pairSide(to)
	if err != nil {
		return err
	}
	p, changed, err := k.patchPair(ctx, name, func(p *licensehav1.LicenseBackupPair) (bool, error) {
		if p.Spec.Mode != licensehav1.ActivePassive {
			return false, fmt.Errorf("an ActiveActive pair has both servers serving: there is nothing to switch over")
		}
		if side == licensehav1.SideMain && p.Spec.Main.Stopped || side == licensehav1.SideBackup && p.Spec.Backup.Stopped {
			return false, fmt.Errorf("the %s is stopped (spec.%s.stopped): resume it first (kubectl licenseha resume %s --side %s)", side, side, p.Name, side)
		}
		cur := p.Spec.PreferredSide
		if cur == "" {
			cur = licensehav1.SideMain
		}
		if cur == side || dryRun {
			return cur != side, nil
		}
		p.Spec.PreferredSide = side
		return true, nil
	})
	if err != nil {
		return err
	}
	switch {
	case !changed:
		fmt.Fprintf(out, "%s/%s: the %s is already the preferred side\n", k.ns, name, side)
	case dryRun:
		fmt.Fprintf(out, "%s/%s: would set spec.preferredSide to %s (dry run)\n", k.ns, name, side)
		return nil
	default:
		fmt.Fprintf(out, "%s/%s: spec.preferredSide set to %s\n", k.ns, name, side)
	}
	if !waitFor {
		return nil
	}
	fmt.Fprintf(out, "Waiting up to %s for the %s to serve...\n", timeout, side)
	return k.waitPair(ctx, name, p.Generation, timeout, func(p *licensehav1.LicenseBackupPair) bool {
		return p.Status.ActiveServer == side
	}, fmt.Sprintf("the %s did not serve", side))
}

// waitPair polls the pair until done holds for a status of at least
// generation.
func (k *kube) waitPair(ctx context.Context, name string, generation int64, timeout time.Duration, done func(*licensehav1.LicenseBackupPair) bool, failure string) error {
	return pollGroup(ctx, k, name, timeout, func(p *licensehav1.LicenseBackupPair) bool {
		return p.Status.ObservedGeneration >= generation && done(p)
	}, func(last *licensehav1.LicenseBackupPair) error {
		return fmt.Errorf("%s within %s (serving: %s, phase: %s); the change stays in the spec: see kubectl licenseha status %s",
			failure, timeout, orDash(string(last.Status.ActiveServer)), orDash(string(last.Status.Phase)), name)
	})
}

// newStopCmd and newResumeCmd stop and resume one side of a pair.
func newStopCmd(o *Options) *cobra.Command   { return stopResumeCmd(o, true) }
func newResumeCmd(o *Options) *cobra.Command { return stopResumeCmd(o, false) }

func stopResumeCmd(o *Options, stop bool) *cobra.Command {
	var (
		sideName string
		w        *waitFlags
	)
	verb, short, long := "resume", "Resume a stopped side of a backup pair", `Set spec.<side>.stopped to false: the operator starts the side's pod again. With roles Fixed a
resumed main takes the role back as soon as it can serve (ActivePassive).`
	if stop {
		verb, short, long = "stop", "Stop one side of a backup pair on purpose", `Set spec.<side>.stopped: the operator deletes the side's pod and does not start it again until
kubectl licenseha resume. A serving side hands its role to the other first (ActivePassive), and a
stopped main syncs its settings and data folders to the backup once more before it ends. The pair
stays Degraded (reason SideStopped) while a side is stopped.`
	}
	cmd := &cobra.Command{
		Use:               verb + " PAIR --side main|backup",
		Short:             short,
		Long:              long,
		Example:           fmt.Sprintf("  kubectl licenseha %s plant-b --side main", verb),
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(o, false, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			side, err := pairSide(sideName)
			if err != nil {
				return err
			}
			k, err := o.kube()
			if err != nil {
				return err
			}
			ctx, name := cmd.Context(), args[0]
			p, changed, err := k.patchPair(ctx, name, func(p *licensehav1.LicenseBackupPair) (bool, error) {
				s := &p.Spec.Main
				if side == licensehav1.SideBackup {
					s = &p.Spec.Backup
				}
				if s.Stopped == stop {
					return false, nil
				}
				s.Stopped = stop
				return true, nil
			})
			if err != nil {
				return err
			}
			state := "running"
			if stop {
				state = "stopped"
			}
			if !changed {
				fmt.Fprintf(o.Out, "%s/%s: the %s is already %s\n", k.ns, name, side, state)
			} else {
				fmt.Fprintf(o.Out, "%s/%s: spec.%s.stopped set to %v\n", k.ns, name, side, stop)
			}
			if !w.wait {
				return nil
			}
			fmt.Fprintf(o.Out, "Waiting up to %s for the %s to be %s...\n", w.timeout, side, state)
			return k.waitPair(ctx, name, p.Generation, w.timeout, func(p *licensehav1.LicenseBackupPair) bool {
				s := p.Status.Main
				if side == licensehav1.SideBackup {
					s = p.Status.Backup
				}
				if stop {
					return s.Pod == "" && p.Status.ActiveServer != side
				}
				return s.Ready
			}, fmt.Sprintf("the %s is not %s", side, state))
		},
	}
	cmd.Flags().StringVar(&sideName, "side", "", "main or backup (required)")
	w = addWaitFlags(cmd, "wait until the side is "+map[bool]string{true: "stopped", false: "ready"}[stop], 5*time.Minute)
	_ = cmd.MarkFlagRequired("side")
	return cmd
}
