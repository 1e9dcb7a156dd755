package controlplane

import (
	"context"
	"fmt"
	"log"
	"net"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	corev1listers "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
)

const (
	// ClusterDomain is the DNS domain of Services and pods.
	ClusterDomain = "cluster.local"
	dnsTTL        = 5
)

// DNSServer is a minimal cluster DNS (UDP port 53):
// A records for Services (<svc>.<ns>.svc.cluster.local: the ClusterIP, or
// the ready endpoints of a headless Service), for the pods of a headless
// Service with hostname and subdomain (<host>.<svc>.<ns>.svc.cluster.local,
// what StatefulSet pods get) and for pod addresses (a-b-c-d.<ns>.pod...).
// Other names are looked up on the host.
type DNSServer struct {
	services corev1listers.ServiceLister
	slices   discoverylisters.EndpointSliceLister
	conn     net.PacketConn
}

// NewDNSServer listens on addr (UDP port 53).
func NewDNSServer(addr string, services corev1listers.ServiceLister, slices discoverylisters.EndpointSliceLister) (*DNSServer, error) {
	conn, err := net.ListenPacket("udp", net.JoinHostPort(addr, "53"))
	if err != nil {
		return nil, fmt.Errorf("cluster DNS: %w", err)
	}
	return &DNSServer{services: services, slices: slices, conn: conn}, nil
}

// ResolvConf is the pods' /etc/resolv.conf, as the kubelet writes it for
// the ClusterFirst DNS policy, with the server at nameserver.
func ResolvConf(namespace, nameserver string) string {
	return fmt.Sprintf("search %s.svc.%s svc.%s %s\nnameserver %s\noptions ndots:5\n",
		namespace, ClusterDomain, ClusterDomain, ClusterDomain, nameserver)
}

// Serve answers queries until ctx ends.
func (d *DNSServer) Serve(ctx context.Context) {
	go func() {
		<-ctx.Done()
		d.conn.Close()
	}()
	buf := make([]byte, 1500)
	for {
		n, addr, err := d.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() == nil {
				log.Printf("cluster DNS: %v", err)
			}
			return
		}
		reply, err := d.answer(ctx, buf[:n])
		if err != nil {
			continue // not a query we can parse: drop it
		}
		_, _ = d.conn.WriteTo(reply, addr)
	}
}

func (d *DNSServer) answer(ctx context.Context, query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	ips, found := d.resolve(ctx, strings.ToLower(strings.TrimSuffix(q.Name.String(), ".")))
	rcode := dnsmessage.RCodeSuccess
	if !found {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired,
		RecursionAvailable: true, RCode: rcode,
	})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL {
		for _, ip := range ips {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}
			if err := b.AResource(rh, dnsmessage.AResource{A: [4]byte(ip.To4())}); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}

// resolve returns the IPv4 addresses of a name and whether it exists.
func (d *DNSServer) resolve(ctx context.Context, name string) ([]net.IP, bool) {
	rest, inCluster := strings.CutSuffix(name, "."+ClusterDomain)
	if !inCluster {
		addrs, err := net.DefaultResolver.LookupIP(ctx, "ip4", name)
		return addrs, err == nil
	}
	parts := strings.Split(rest, ".")
	switch {
	case len(parts) == 3 && parts[2] == "svc":
		return d.service(parts[1], parts[0], "")
	case len(parts) == 4 && parts[3] == "svc":
		return d.service(parts[2], parts[1], parts[0])
	case len(parts) == 3 && parts[2] == "pod":
		ip := net.ParseIP(strings.ReplaceAll(parts[0], "-", ".")).To4()
		return []net.IP{ip}, ip != nil
	}
	return nil, false
}

// service resolves a Service, or with host one named endpoint of it.
func (d *DNSServer) service(namespace, name, host string) ([]net.IP, bool) {
	svc, err := d.services.Services(namespace).Get(name)
	if err != nil {
		return nil, false
	}
	if host == "" && svc.Spec.ClusterIP != corev1.ClusterIPNone && svc.Spec.ClusterIP != "" {
		return []net.IP{net.ParseIP(svc.Spec.ClusterIP)}, true
	}
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})
	slices, _ := d.slices.EndpointSlices(namespace).List(sel)
	var ips []net.IP
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready || svc.Spec.PublishNotReadyAddresses
			if !ready || (host != "" && deref(ep.Hostname) != host) {
				continue
			}
			for _, a := range ep.Addresses {
				if ip := net.ParseIP(a).To4(); ip != nil {
					ips = append(ips, ip)
				}
			}
		}
	}
	return ips, host == "" || len(ips) > 0
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
