package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// logFlags are the flags of `logs`, as kubectl logs spells them.
type logFlags struct {
	container     string
	allContainers bool
	follow        bool
	previous      bool
	timestamps    bool
	tail          int64
	since         time.Duration
	sinceTime     string
	limitBytes    int64
	// prefix: nil decides by the number of streams (on when more than one).
	prefix *bool
}

// logStream is one container's log to show.
type logStream struct {
	Member    string
	Pod       string
	Container string
}

// podLogOptions maps the flags to the request for one container.
func (f *logFlags) podLogOptions(container string) (*corev1.PodLogOptions, error) {
	opts := &corev1.PodLogOptions{
		Container:  container,
		Follow:     f.follow,
		Previous:   f.previous,
		Timestamps: f.timestamps,
	}
	if f.since != 0 && f.sinceTime != "" {
		return nil, errors.New("give --since or --since-time, not both")
	}
	if f.since < 0 {
		return nil, fmt.Errorf("--since %s: give a positive duration", f.since)
	}
	if f.since > 0 {
		secs := int64(math.Ceil(f.since.Seconds()))
		opts.SinceSeconds = &secs
	}
	if f.sinceTime != "" {
		t, err := time.Parse(time.RFC3339, f.sinceTime)
		if err != nil {
			return nil, fmt.Errorf("--since-time %q: give an RFC 3339 time, e.g. 2026-11-21T10:00:00Z", f.sinceTime)
		}
		mt := metav1.NewTime(t)
		opts.SinceTime = &mt
	}
	if f.tail >= 0 {
		tail := f.tail
		opts.TailLines = &tail
	}
	if f.limitBytes < 0 {
		return nil, fmt.Errorf("--limit-bytes %d: give a positive number, or 0 for no limit", f.limitBytes)
	}
	if f.limitBytes > 0 {
		lb := f.limitBytes
		opts.LimitBytes = &lb
	}
	return opts, nil
}

// podContainers lists the containers of a pod: the regular ones, and with
// init the init containers first (in the order they run).
func podContainers(p *corev1.Pod, init bool) []string {
	var out []string
	if init {
		for _, c := range p.Spec.InitContainers {
			out = append(out, c.Name)
		}
	}
	for _, c := range p.Spec.Containers {
		out = append(out, c.Name)
	}
	return out
}

// selectLogStreams picks the member pods and containers whose logs to show:
// MEMBER's pod, or every member's that has one (missing lists the members
// without a pod); CONTAINER of each, or all their containers.
func selectLogStreams(g *groupTarget, ns string, pods map[string]*corev1.Pod, member, container string, allContainers bool) (streams []logStream, missing []string, err error) {
	var members []string
	if member != "" {
		if !g.hasMember(member) && pods[member] == nil {
			return nil, nil, g.noMember(ns, member)
		}
		if pods[member] == nil {
			return nil, nil, fmt.Errorf("%s %s/%s: member %s has no pod (the operator has not created it yet, or it is being replaced); see kubectl licenseha status %s",
				g.kind, ns, g.name, member, g.name)
		}
		members = []string{member}
	} else {
		members = podMembers(g, pods)
		for _, m := range g.members {
			if pods[m] == nil {
				missing = append(missing, m)
			}
		}
		if len(members) == 0 {
			return nil, missing, fmt.Errorf("%s %s/%s has no member pods; see kubectl licenseha status %s", g.kind, ns, g.name, g.name)
		}
	}
	for _, m := range members {
		p := pods[m]
		names := podContainers(p, allContainers)
		if container != "" {
			all := podContainers(p, true)
			found := false
			for _, c := range all {
				found = found || c == container
			}
			if !found {
				return nil, missing, fmt.Errorf("pod %s of member %s has no container %q; its containers are %s", p.Name, m, container, strings.Join(all, ", "))
			}
			names = []string{container}
		}
		for _, c := range names {
			streams = append(streams, logStream{Member: m, Pod: p.Name, Container: c})
		}
	}
	return streams, missing, nil
}

// streamPrefixes returns the line prefix of each stream: "[member] ", or
// "[member/container] " when some pod shows more than one container; none
// when prefix is off.
func streamPrefixes(streams []logStream, prefix *bool) []string {
	on := len(streams) > 1
	if prefix != nil {
		on = *prefix
	}
	out := make([]string, len(streams))
	if !on {
		return out
	}
	perPod := map[string]int{}
	for _, s := range streams {
		perPod[s.Pod]++
	}
	multi := false
	for _, n := range perPod {
		multi = multi || n > 1
	}
	for i, s := range streams {
		if multi {
			out[i] = "[" + s.Member + "/" + s.Container + "] "
		} else {
			out[i] = "[" + s.Member + "] "
		}
	}
	return out
}

// openPodLogs opens the log of one container; tests replace it (envtest has
// no kubelet to serve logs).
var openPodLogs = func(ctx context.Context, k *kube, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return k.cs.CoreV1().Pods(k.ns).GetLogs(pod, opts).Stream(ctx)
}

// lineWriter writes whole lines from concurrent streams.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lineWriter) writeLine(prefix, line string) error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	_, err := io.WriteString(lw.w, prefix+line)
	return err
}

// copyLines copies r to w line by line, each line prefixed; a last line
// without a newline gets one.
func copyLines(w *lineWriter, r io.Reader, prefix string) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if !strings.HasSuffix(line, "\n") {
				line += "\n"
			}
			if werr := w.writeLine(prefix, line); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func newLogsCmd(o *Options) *cobra.Command {
	f := &logFlags{}
	var prefix bool
	cmd := &cobra.Command{
		Use:   "logs GROUP [MEMBER]",
		Short: "Print the logs of a group's member pods (all members, each line prefixed with its member)",
		Long: `Print the logs of the member pods of a LicenseTriad or LicenseBackupPair: of MEMBER (a triad's member
name, or a pair's server main or backup), or of every member that has a pod, each line prefixed with
"[member] " (or "[member/container] " when more than one container per pod is shown). The agent and the
license server run in the pod's container "server" (the agent supervises the server), so that one
container holds both logs; --all-containers adds the init container install-agent.`,
		Example: `  kubectl licenseha logs plant-a
  kubectl licenseha logs plant-a b --tail 100 -f
  kubectl licenseha logs plant-b main --previous
  kubectl licenseha logs plant-a --since 10m --timestamps`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: completeGroupThenMember(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("prefix") {
				f.prefix = &prefix
			}
			if _, err := f.podLogOptions(""); err != nil {
				return err
			}
			member := ""
			if len(args) == 2 {
				member = args[1]
			}
			k, err := o.kube()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			g, err := k.findGroup(ctx, args[0])
			if err != nil {
				return err
			}
			pods, err := k.memberPods(ctx, g)
			if err != nil {
				return err
			}
			streams, missing, err := selectLogStreams(g, k.ns, pods, member, f.container, f.allContainers)
			for _, m := range missing {
				fmt.Fprintf(o.ErrOut, "warning: member %s of %s/%s has no pod\n", m, k.ns, g.name)
			}
			if err != nil {
				return err
			}
			return k.showLogs(ctx, o, streams, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.container, "container", "c", "", "print the logs of this container (default: every container of the member pod: server, which runs the agent and the license server)")
	fl.BoolVar(&f.allContainers, "all-containers", false, "include the init container (install-agent)")
	fl.BoolVarP(&f.follow, "follow", "f", false, "stream the logs as they are written")
	fl.BoolVarP(&f.previous, "previous", "p", false, "print the logs of the previous (crashed or restarted) container")
	fl.BoolVar(&f.timestamps, "timestamps", false, "prefix each line with its RFC 3339 timestamp")
	fl.Int64Var(&f.tail, "tail", -1, "lines of the most recent log to show per container (-1: all)")
	fl.DurationVar(&f.since, "since", 0, "only logs newer than this duration, e.g. 5s, 2m, 3h")
	fl.StringVar(&f.sinceTime, "since-time", "", "only logs after this RFC 3339 time")
	fl.Int64Var(&f.limitBytes, "limit-bytes", 0, "bytes of log to show per container (0: no limit)")
	fl.BoolVar(&prefix, "prefix", true, "prefix each line with its member (default: when more than one container's log is shown)")
	_ = cmd.RegisterFlagCompletionFunc("container", cobra.FixedCompletions([]string{"server", "install-agent"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// showLogs prints the streams: one after the other, or with --follow all at
// once, line by line. A stream that fails is reported and the others go on;
// the command then fails.
func (k *kube) showLogs(ctx context.Context, o *Options, streams []logStream, f *logFlags) error {
	prefixes := streamPrefixes(streams, f.prefix)
	w := &lineWriter{w: o.Out}
	var mu sync.Mutex
	var failed []string
	one := func(i int) {
		s := streams[i]
		err := func() error {
			opts, err := f.podLogOptions(s.Container)
			if err != nil {
				return err
			}
			rc, err := openPodLogs(ctx, k, s.Pod, opts)
			if err != nil {
				return err
			}
			defer rc.Close()
			return copyLines(w, rc, prefixes[i])
		}()
		if err != nil && ctx.Err() == nil {
			mu.Lock()
			failed = append(failed, s.Member+"/"+s.Container)
			mu.Unlock()
			fmt.Fprintf(o.ErrOut, "error: logs of member %s (pod %s, container %s): %v\n", s.Member, s.Pod, s.Container, err)
		}
	}
	if f.follow {
		var wg sync.WaitGroup
		for i := range streams {
			wg.Add(1)
			go func() { defer wg.Done(); one(i) }()
		}
		wg.Wait()
	} else {
		for i := range streams {
			one(i)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("could not read the logs of %s", strings.Join(failed, ", "))
	}
	return nil
}
