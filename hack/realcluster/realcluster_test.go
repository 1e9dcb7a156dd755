package main

import (
	"net"
	"reflect"
	"testing"
)

func TestSplitRule(t *testing.T) {
	got := splitRule(`-A OUTPUT -d 10.0.0.1/32 -m comment --comment "realcluster fault isolate-apiserver" -j DROP`)
	want := []string{"-A", "OUTPUT", "-d", "10.0.0.1/32", "-m", "comment", "--comment", "realcluster fault isolate-apiserver", "-j", "DROP"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("splitRule = %q, want %q", got, want)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/run/a\040b`); got != "/run/a b" {
		t.Errorf("got %q", got)
	}
}

func TestOurChains(t *testing.T) {
	for c, want := range map[string]bool{
		"KUBE-SERVICES": true, "CNI-HOSTPORT-DNAT": true, "RC3-NODE-DOWN": true,
		"LOCALCLUSTER6-SERVICES": false, "INPUT": false, "DOCKER": false,
	} {
		if isOurChain(c) != want {
			t.Errorf("isOurChain(%s) = %v", c, !want)
		}
	}
}

// TestInstancesApart checks that no network of a real-node instance
// overlaps another instance's, and that link names stay within Linux's 15
// characters.
func TestInstancesApart(t *testing.T) {
	var nets []*net.IPNet
	add := func(cidr string) {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range nets {
			if o.Contains(n.IP) || n.Contains(o.IP) {
				t.Errorf("%s overlaps %s", n, o)
			}
		}
		nets = append(nets, n)
	}
	for i := 0; i < 10; i++ {
		in := instance{index: i}
		add(in.podNet())
		add(in.serviceCIDR())
		add(in.hostNet() + ".0/24")
		for _, l := range []string{in.vethHost(), in.vethPeer(), in.bridge(maxNodes - 1)} {
			if len(l) > 15 {
				t.Errorf("link name %q", l)
			}
		}
	}
}
