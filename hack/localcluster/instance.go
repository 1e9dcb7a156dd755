package main

import (
	"fmt"
	"os"
	"strconv"
)

// Up to ten local clusters can run side by side on one host (a developer's
// cluster and a test's, say); $LOCALCLUSTER_INSTANCE (0-9, default 0)
// selects one for every command. Each instance has its own bridge,
// addresses, ports, iptables chains and lock; instance i uses the pod
// network 10.(244+i).0.0/16 and the service network 10.(96+i).0.0/16.
// Names of other instances never start with those of instance 0 (which
// has no suffix), so that cleaning up one never touches another.
var (
	instanceIndex = instanceFromEnv()
	suffix        = instanceSuffix()

	bridgeName = fmt.Sprintf("lc%d", instanceIndex)
	// podNetPrefix is the first two octets of the pod network.
	podNetPrefix = fmt.Sprintf("10.%d", 244+instanceIndex)
	// bridgeIP is the pods' gateway, the API server's and the cluster
	// DNS's address.
	bridgeIP    = podNetPrefix + ".0.1"
	serviceCIDR = fmt.Sprintf("10.%d.0.0/16", 96+instanceIndex)
	// kubernetesServiceIP is the first address of serviceCIDR, which the
	// API server assigns to the "kubernetes" Service.
	kubernetesServiceIP = fmt.Sprintf("10.%d.0.1", 96+instanceIndex)
	etcdClientPort      = 12379 + 10*instanceIndex
	etcdPeerPort        = 12380 + 10*instanceIndex
	netnsPrefix         = "lc" + suffix + "-"
	vethPrefix          = instanceVethPrefix()
	servicesChain       = "LOCALCLUSTER" + suffix + "-SERVICES"
	hairpinChain        = "LOCALCLUSTER" + suffix + "-HAIRPIN"
	lockFile            = "/run/localcluster" + suffix + ".lock"
)

func instanceVethPrefix() string {
	if instanceIndex == 0 {
		return "lcv"
	}
	return "l" + suffix + "v"
}

func instanceSuffix() string {
	if instanceIndex == 0 {
		return ""
	}
	return strconv.Itoa(instanceIndex)
}

func instanceFromEnv() int {
	v := os.Getenv("LOCALCLUSTER_INSTANCE")
	if v == "" {
		return 0
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 || i > 9 {
		fmt.Fprintf(os.Stderr, "LOCALCLUSTER_INSTANCE=%q: want a number from 0 to 9\n", v)
		os.Exit(2)
	}
	return i
}
