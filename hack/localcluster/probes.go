package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeTarget is what a probe needs to know about its container.
type probeTarget struct {
	podIP     string
	container *corev1.Container
	pid       int      // the container's main process, for exec probes
	env       []string // the container's environment, for exec probes
}

// probeLoop runs one probe until ctx ends, calling report whenever the
// outcome flips after the failure or success threshold is reached. The
// first report comes after the first conclusive result.
func probeLoop(ctx context.Context, p *corev1.Probe, target func() probeTarget, report func(ok bool, msg string)) {
	period := seconds(p.PeriodSeconds, 10)
	successThreshold, failureThreshold := int(orDefault(p.SuccessThreshold, 1)), int(orDefault(p.FailureThreshold, 3))
	select {
	case <-ctx.Done():
		return
	case <-time.After(seconds(p.InitialDelaySeconds, 0)):
	}
	var state *bool
	successes, failures := 0, 0
	for {
		ok, msg := runProbe(ctx, p, target())
		if ctx.Err() != nil {
			return
		}
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		switch {
		case ok && successes >= successThreshold && (state == nil || !*state):
			state = &ok
			report(true, "")
		case !ok && failures >= failureThreshold && (state == nil || *state):
			state = &ok
			report(false, msg)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(period):
		}
	}
}

func seconds(v int32, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

func orDefault(v, def int32) int32 {
	if v <= 0 {
		return def
	}
	return v
}

// runProbe runs one attempt of a probe.
func runProbe(ctx context.Context, p *corev1.Probe, t probeTarget) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, seconds(p.TimeoutSeconds, 1))
	defer cancel()
	return runHandler(ctx, p.ProbeHandler, t)
}

// runHandler runs a probe's or a lifecycle hook's action until ctx ends.
func runHandler(ctx context.Context, h corev1.ProbeHandler, t probeTarget) (bool, string) {
	switch {
	case h.HTTPGet != nil:
		return httpProbe(ctx, h.HTTPGet, t)
	case h.TCPSocket != nil:
		port, err := resolvePort(h.TCPSocket.Port, t.container)
		if err != nil {
			return false, err.Error()
		}
		host := h.TCPSocket.Host
		if host == "" {
			host = t.podIP
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case h.Exec != nil:
		// Run the command in the container's namespaces and root, as
		// the container runtime does.
		args := append([]string{"-t", strconv.Itoa(t.pid), "-m", "-u", "-n", "-r", "-w", "--"}, h.Exec.Command...)
		cmd := exec.CommandContext(ctx, "nsenter", args...)
		cmd.Env = t.env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return false, fmt.Sprintf("exec %q failed: %v: %s", h.Exec.Command, err, out)
		}
		return true, ""
	}
	return false, "unsupported action (the local cluster supports httpGet, tcpSocket and exec)"
}

func httpProbe(ctx context.Context, g *corev1.HTTPGetAction, t probeTarget) (bool, string) {
	port, err := resolvePort(g.Port, t.container)
	if err != nil {
		return false, err.Error()
	}
	host := g.Host
	if host == "" {
		host = t.podIP
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), g.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "kube-probe/localcluster")
	for _, h := range g.HTTPHeaders {
		req.Header.Set(h.Name, h.Value)
	}
	// Like the kubelet, probes do not verify certificates.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return true, ""
}

// resolvePort turns a number or a named container port into a number.
func resolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, port.StrVal)
}
