package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// roleChange is one member's role change.
type roleChange struct {
	Member   string
	From, To licensehav1.MemberRole
}

// planSwitchover computes the new roles that make target the Primary: the
// old primary becomes Secondary. A Tertiary target is refused unless
// promoteTertiary, in which case the old secondary becomes the Tertiary.
func planSwitchover(members []licensehav1.TriadMember, target string, promoteTertiary bool) ([]licensehav1.TriadMember, []roleChange, error) {
	idx := map[licensehav1.MemberRole]int{}
	ti := -1
	var names []string
	for i, m := range members {
		idx[m.Role] = i
		names = append(names, m.Name)
		if m.Name == target {
			ti = i
		}
	}
	if ti < 0 {
		return nil, nil, fmt.Errorf("the triad has no member %q; its members are %s", target, strings.Join(names, ", "))
	}
	for _, r := range []licensehav1.MemberRole{licensehav1.RolePrimary, licensehav1.RoleSecondary, licensehav1.RoleTertiary} {
		if _, ok := idx[r]; !ok {
			return nil, nil, fmt.Errorf("the triad has no %s member; fix spec.members first", r)
		}
	}
	out := make([]licensehav1.TriadMember, len(members))
	for i := range members {
		out[i] = *members[i].DeepCopy()
	}
	switch members[ti].Role {
	case licensehav1.RolePrimary:
		return out, nil, nil
	case licensehav1.RoleSecondary:
		out[ti].Role = licensehav1.RolePrimary
		out[idx[licensehav1.RolePrimary]].Role = licensehav1.RoleSecondary
	case licensehav1.RoleTertiary:
		if !promoteTertiary {
			return nil, nil, fmt.Errorf("member %q is the Tertiary: it only completes the quorum and never serves. "+
				"Switch over to the Secondary %q instead, or pass --promote-tertiary to make %q the Primary "+
				"(the Primary %q becomes Secondary and the Secondary %q becomes Tertiary)",
				target, members[idx[licensehav1.RoleSecondary]].Name, target,
				members[idx[licensehav1.RolePrimary]].Name, members[idx[licensehav1.RoleSecondary]].Name)
		}
		out[ti].Role = licensehav1.RolePrimary
		out[idx[licensehav1.RolePrimary]].Role = licensehav1.RoleSecondary
		out[idx[licensehav1.RoleSecondary]].Role = licensehav1.RoleTertiary
	default:
		return nil, nil, fmt.Errorf("member %q has the unknown role %q", target, members[ti].Role)
	}
	var changes []roleChange
	for i := range members {
		if members[i].Role != out[i].Role {
			changes = append(changes, roleChange{Member: members[i].Name, From: members[i].Role, To: out[i].Role})
		}
	}
	return out, changes, nil
}

func newSwitchoverCmd(o *Options) *cobra.Command {
	var (
		to              string
		promoteTertiary bool
		dryRun          bool
		w               *waitFlags
	)
	cmd := &cobra.Command{
		Use:   "switchover GROUP --to MEMBER",
		Short: "Planned switchover: make MEMBER (a triad member, or a pair's main or backup) serve and wait until it does",
		Long: `Triad: make MEMBER the Primary of a LicenseTriad by editing spec.members[].role: MEMBER becomes
Primary and the old Primary becomes Secondary. The operator and the members' agents then hand the
active role over. The Tertiary never serves, so it is refused as a target unless --promote-tertiary
is given; then the old Secondary becomes the Tertiary.

ActivePassive backup pair: set spec.preferredSide to main or backup; the serving side hands over at
once. With roles Fixed the role stays on the preferred side (switch back with --to main); with
Symmetric it stays wherever it is until the next failover.`,
		Example: `  kubectl licenseha switchover plant-a --to b
  kubectl licenseha switchover plant-a --to c --promote-tertiary --timeout 2m
  kubectl licenseha switchover plant-b --to backup`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(o, true, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := o.kube()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			name := args[0]
			var pair licensehav1.LicenseBackupPair
			if k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, &pair) == nil {
				if promoteTertiary {
					return fmt.Errorf("--promote-tertiary applies to triads; %s/%s is a LicenseBackupPair", k.ns, name)
				}
				return switchoverPair(ctx, k, o.Out, name, to, w.wait, dryRun, w.timeout)
			}
			var changes []roleChange
			// The patch carries the resourceVersion it was computed from, so
			// a concurrent edit is never overwritten: on a conflict the
			// triad is read again and the roles planned afresh.
			t, _, err := patchRetry(ctx, k, fmt.Sprintf("changing the roles of %s/%s", k.ns, name),
				func() (*licensehav1.LicenseTriad, error) { return k.triad(ctx, name) },
				func(t *licensehav1.LicenseTriad) (bool, error) {
					var members []licensehav1.TriadMember
					var err error
					members, changes, err = planSwitchover(t.Spec.Members, to, promoteTertiary)
					if err != nil {
						return false, fmt.Errorf("%s/%s: %w", k.ns, name, err)
					}
					if len(changes) == 0 || dryRun {
						return false, nil
					}
					t.Spec.Members = members
					return true, nil
				})
			if err != nil {
				return err
			}
			if len(changes) == 0 {
				fmt.Fprintf(o.Out, "%s/%s: %s is already the Primary; roles unchanged\n", k.ns, name, to)
			} else {
				verb := "changed"
				if dryRun {
					verb = "would change (dry run)"
				}
				fmt.Fprintf(o.Out, "%s/%s: roles %s:\n", k.ns, name, verb)
				for _, c := range changes {
					fmt.Fprintf(o.Out, "  %s: %s -> %s\n", c.Member, c.From, c.To)
				}
			}
			if dryRun || !w.wait {
				return nil
			}
			if t.Status.ActiveMember == to && len(changes) == 0 {
				fmt.Fprintf(o.Out, "%s is active\n", to)
				return nil
			}
			fmt.Fprintf(o.Out, "Waiting up to %s for %s to become active...\n", w.timeout, to)
			return k.waitActive(ctx, name, to, t.Generation, w.timeout, func(active string) {
				fmt.Fprintf(o.Out, "  active member: %s\n", orDash(active))
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "member to make the Primary (required)")
	cmd.Flags().BoolVar(&promoteTertiary, "promote-tertiary", false, "allow the Tertiary as target: it becomes Primary, the Primary becomes Secondary and the Secondary becomes Tertiary")
	w = addWaitFlags(cmd, "wait until the target member is active", 5*time.Minute)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the role changes without making them")
	_ = cmd.MarkFlagRequired("to")
	_ = cmd.RegisterFlagCompletionFunc("to", completeMembers(o))
	return cmd
}

// waitActive polls the triad until status.activeMember is target and the
// status describes at least generation. onChange reports each new active
// member seen.
func (k *kube) waitActive(ctx context.Context, name, target string, generation int64, timeout time.Duration, onChange func(string)) error {
	last := "\x00"
	return pollGroup(ctx, k, name, timeout, func(t *licensehav1.LicenseTriad) bool {
		if a := t.Status.ActiveMember; a != last {
			if last != "\x00" || a != target {
				onChange(a)
			}
			last = a
		}
		return t.Status.ActiveMember == target && t.Status.ObservedGeneration >= generation
	}, func(t *licensehav1.LicenseTriad) error {
		return fmt.Errorf("%s did not become active within %s (active: %s, phase: %s); the role change stays in the spec: see kubectl licenseha status %s",
			target, timeout, orDash(t.Status.ActiveMember), orDash(string(t.Status.Phase)), name)
	})
}
