package controllers

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// Members of a group must run the same license-server version; vendors
// refuse a failover between versions. The operator cannot stop a failover
// (the agents decide it within seconds), so it reports every mismatch in
// Degraded (reason VersionMismatch), naming members and versions, and says
// when a failover would move clients to an older server than the one that
// serves them: the sign of an upgrade done in the wrong order.

// compareVersions orders two server versions: dotted numbers compare
// numerically (1.10 > 1.9), a leading "v" is ignored, anything else
// compares as text. It returns -1, 0 or 1.
func compareVersions(a, b string) int {
	pa := strings.Split(strings.TrimPrefix(a, "v"), ".")
	pb := strings.Split(strings.TrimPrefix(b, "v"), ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y string
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		nx, errX := strconv.Atoi(x)
		ny, errY := strconv.Atoi(y)
		switch {
		case x == y:
			continue
		case errX == nil && errY == nil && nx != ny:
			if nx < ny {
				return -1
			}
			return 1
		case x < y:
			return -1
		case x > y:
			return 1
		}
	}
	return 0
}

// versionMismatch describes members running different server versions;
// "" when every member that reports a version runs the same one. versions
// maps member to version (members without one are left out); active is
// the member that serves; takeover lists the members that may take over
// from it, in order. The message names every member's version and, when a
// member that may take over runs an older version than the active one,
// says so and which to upgrade.
func versionMismatch(versions map[string]string, active string, takeover []string, upgradeHint string) string {
	distinct := map[string]bool{}
	var names []string
	for name, v := range versions {
		if v == "" {
			continue
		}
		distinct[v] = true
		names = append(names, name)
	}
	if len(distinct) < 2 {
		return ""
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s runs %s", n, versions[n]))
	}
	msg := "Members run different server versions (" + strings.Join(parts, ", ") + "); all must run the same version and edition"
	if av := versions[active]; av != "" {
		var older []string
		for _, m := range takeover {
			if v := versions[m]; m != active && v != "" && compareVersions(v, av) < 0 {
				older = append(older, fmt.Sprintf("%s (%s)", m, v))
			}
		}
		if len(older) > 0 {
			msg += fmt.Sprintf(". A failover would move clients from %s (%s) to an older server: %s; upgrade it", active, av, strings.Join(older, ", "))
		}
	}
	if upgradeHint != "" {
		msg += ". " + upgradeHint
	}
	return msg
}

// clientEndpoint is the client port of a group's servers and the address
// clients use in the cluster: the group's Service and that port.
func clientEndpoint(namespace, service string, port int32) (int32, string) {
	if port == 0 {
		port = licensehav1.DefaultServerPort
	}
	return port, fmt.Sprintf("%s.%s.svc:%d", service, namespace, port)
}
