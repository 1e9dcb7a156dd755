package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	corev1informers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// The service proxy is a minimal kube-proxy (iptables mode, ClusterIP only).
// servicesChain holds one DNAT rule set per Service port: traffic to
// ClusterIP:port, from the host or from a pod, goes to a ready endpoint,
// chosen at random. Replies from a pod are un-NATed by conntrack because
// the bridge passes its traffic through iptables (bridge-nf-call-iptables).
// hairpinChain masquerades a pod's traffic that its Service sent back to
// itself, which would otherwise reach it with its own source address.
// natHooks are the built-in nat chains that jump to ours.
var natHooks = []struct{ hook, chain string }{
	{"PREROUTING", servicesChain}, {"OUTPUT", servicesChain}, {"POSTROUTING", hairpinChain},
}

type serviceProxy struct {
	services corev1informers.ServiceInformer
	slices   discoveryinformers.EndpointSliceInformer
	trigger  chan struct{}
	applied  string
}

func newServiceProxy(services corev1informers.ServiceInformer, slices discoveryinformers.EndpointSliceInformer) *serviceProxy {
	p := &serviceProxy{services: services, slices: slices, trigger: make(chan struct{}, 1)}
	poke := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.poke() },
		UpdateFunc: func(any, any) { p.poke() },
		DeleteFunc: func(any) { p.poke() },
	}
	_, _ = services.Informer().AddEventHandler(poke)
	_, _ = slices.Informer().AddEventHandler(poke)
	return p
}

// run keeps the rules in step with Services and EndpointSlices until ctx ends.
func (p *serviceProxy) run(ctx context.Context) error {
	if err := p.install(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.trigger:
		}
		svcs, _ := p.services.Lister().List(labels.Everything())
		eps, _ := p.slices.Lister().List(labels.Everything())
		if err := p.apply(serviceRules(svcs, eps)); err != nil {
			log.Printf("service proxy: %v", err)
			time.AfterFunc(time.Second, p.poke)
		}
	}
}

func (p *serviceProxy) poke() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// install creates the chain and sends the host's and the pods' traffic
// through it.
func (p *serviceProxy) install() error {
	if err := ensureBridgeNetfilter(); err != nil {
		return err
	}
	for _, chain := range []string{servicesChain, hairpinChain} {
		if err := runTool("iptables", "-t", "nat", "-N", chain); err != nil {
			return err
		}
	}
	for _, h := range natHooks {
		if err := runTool("iptables", "-t", "nat", "-I", h.hook, "-j", h.chain); err != nil {
			return err
		}
	}
	return nil
}

// ensureBridgeNetfilter makes bridged pod-to-pod traffic visit iptables,
// without which a pod's replies to a Service client would skip the un-DNAT.
func ensureBridgeNetfilter() error {
	const knob = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	if _, err := os.Stat(knob); err != nil {
		_ = exec.Command("modprobe", "br_netfilter").Run()
	}
	if err := os.WriteFile(knob, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enabling %s (module br_netfilter): %w", knob, err)
	}
	return nil
}

// apply replaces the chains' rules in one iptables-restore transaction.
func (p *serviceProxy) apply(rules natRules) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*nat\n:%s - [0:0]\n:%s - [0:0]\n", servicesChain, hairpinChain)
	for _, r := range rules.dnat {
		fmt.Fprintf(&b, "-A %s %s\n", servicesChain, r)
	}
	for _, r := range rules.hairpin {
		fmt.Fprintf(&b, "-A %s %s\n", hairpinChain, r)
	}
	b.WriteString("COMMIT\n")
	if b.String() == p.applied {
		return nil
	}
	cmd := exec.Command("iptables-restore", "--noflush")
	cmd.Stdin = bytes.NewReader(b.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore: %v: %s", err, out)
	}
	p.applied = b.String()
	return nil
}

type natRules struct {
	dnat, hairpin []string
}

// serviceRules renders the DNAT rules of every ClusterIP Service port and
// the hairpin rule of every endpoint.
func serviceRules(services []*corev1.Service, slices []*discoveryv1.EndpointSlice) natRules {
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range slices {
		key := s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]
		bySvc[key] = append(bySvc[key], s)
	}
	var rules natRules
	hairpin := map[string]bool{}
	for _, svc := range services {
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		for _, port := range svc.Spec.Ports {
			targets := readyEndpoints(bySvc[svc.Namespace+"/"+svc.Name], port.Name, port.Protocol)
			proto := strings.ToLower(string(port.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			match := fmt.Sprintf("-d %s/32 -p %s --dport %d -m comment --comment \"%s/%s:%s\"", svc.Spec.ClusterIP, proto, port.Port, svc.Namespace, svc.Name, port.Name)
			for i, t := range targets {
				pick := ""
				if left := len(targets) - i; left > 1 {
					pick = fmt.Sprintf("-m statistic --mode random --probability %.5f ", 1/float64(left))
				}
				rules.dnat = append(rules.dnat, fmt.Sprintf("%s %s-j DNAT --to-destination %s", match, pick, t))
				hairpin[strings.Split(t, ":")[0]] = true
			}
		}
	}
	for ip := range hairpin {
		// Only traffic the Service rules sent back to its source: the API
		// server is an endpoint too (of "kubernetes"), and the host's own
		// connections to it must stay as they are.
		rules.hairpin = append(rules.hairpin, fmt.Sprintf("-s %s/32 -d %s/32 -m conntrack --ctstate DNAT -j MASQUERADE", ip, ip))
	}
	sort.Strings(rules.hairpin)
	return rules
}

// readyEndpoints lists ip:port of the ready endpoints for a Service port.
func readyEndpoints(slices []*discoveryv1.EndpointSlice, portName string, proto corev1.Protocol) []string {
	var targets []string
	for _, s := range slices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, p := range s.Ports {
			if p.Port == nil || ptrValue(p.Name) != portName || (p.Protocol != nil && *p.Protocol != proto) {
				continue
			}
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					continue
				}
				for _, addr := range ep.Addresses {
					targets = append(targets, fmt.Sprintf("%s:%d", addr, *p.Port))
				}
			}
		}
	}
	sort.Strings(targets)
	return targets
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// removeServiceRules undoes install; it is safe to call when nothing is there.
func removeServiceRules() {
	for _, h := range natHooks {
		for runTool("iptables", "-t", "nat", "-D", h.hook, "-j", h.chain) == nil {
		}
	}
	for _, chain := range []string{servicesChain, hairpinChain} {
		_ = runTool("iptables", "-t", "nat", "-F", chain)
		_ = runTool("iptables", "-t", "nat", "-X", chain)
	}
}
