package main

import (
	"context"
	"sort"
	"time"

	"github.com/spf13/cobra"
)

// completeFromCluster is a completion that reads the cluster: complete gets
// a connection and a context bounded to 5 s, and the positional arguments
// given so far. Nothing is completed when the cluster cannot be reached,
// and never file names.
func completeFromCluster(o *Options, complete func(ctx context.Context, k *kube, args []string) []cobra.Completion) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		k, err := o.kube()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
		defer cancel()
		return complete(ctx, k, args), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeGroups completes the first argument with the names of the
// groups of the given kinds in the command's namespace.
func completeGroups(o *Options, triads, pairs bool) cobra.CompletionFunc {
	var kinds []*groupKind
	if triads {
		kinds = append(kinds, triadKind)
	}
	if pairs {
		kinds = append(kinds, pairKind)
	}
	return completeFromCluster(o, func(ctx context.Context, k *kube, args []string) []cobra.Completion {
		if len(args) > 0 {
			return nil
		}
		var names []string
		for _, gk := range kinds {
			// A kind that cannot be listed leaves the other's names.
			gs, _ := k.listGroups(ctx, k.ns, gk)
			for _, g := range gs {
				names = append(names, g.name)
			}
		}
		sort.Strings(names)
		return names
	})
}

// completeMembers completes --to and MEMBER with the member names of the
// triad named by the first argument.
func completeMembers(o *Options) cobra.CompletionFunc {
	return completeFromCluster(o, func(ctx context.Context, k *kube, args []string) []cobra.Completion {
		if len(args) == 0 {
			return nil
		}
		t, err := k.triad(ctx, args[0])
		if err != nil {
			return nil
		}
		var out []cobra.Completion
		for _, m := range t.Spec.Members {
			out = append(out, cobra.CompletionWithDesc(m.Name, string(m.Role)))
		}
		return out
	})
}

// completeGroupMembers completes the members (triad) or servers (pair) of
// the group named by the first argument.
func completeGroupMembers(o *Options) cobra.CompletionFunc {
	return completeFromCluster(o, func(ctx context.Context, k *kube, args []string) []cobra.Completion {
		g, err := k.findGroup(ctx, args[0])
		if err != nil {
			return nil
		}
		return g.members
	})
}

// completeThenMember completes the group (with groups), then its member
// (with members).
func completeThenMember(groups, members cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch len(args) {
		case 0:
			return groups(cmd, args, toComplete)
		case 1:
			return members(cmd, args, toComplete)
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeTriadThenMember completes TRIAD, then MEMBER.
func completeTriadThenMember(o *Options) cobra.CompletionFunc {
	return completeThenMember(completeGroups(o, true, false), completeMembers(o))
}

// completeGroupThenMember completes GROUP (triads and pairs), then MEMBER.
func completeGroupThenMember(o *Options) cobra.CompletionFunc {
	return completeThenMember(completeGroups(o, true, true), completeGroupMembers(o))
}
