package server

import (
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strings"
)

// fieldError is a validation error that names the request field at fault.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func fieldErrorf(field, format string, args ...any) *fieldError {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// rules is the compiled form of Settings, evaluated on every checkout.
type rules struct {
	allowUsers, denyUsers []string
	allowNets, denyNets   []netip.Prefix
	allowedPrinters       []string
	// groupPatterns lists, per printer group that has partitions, its patterns.
	groupPatterns map[string][]string
	partitions    map[string]map[string]int
	// clientGroups are the client groups with reservations, sorted by name.
	clientGroups []clientGroup
	reservations map[string]map[string]int // client group → licence id → seats
	reservedOn   map[string][]string       // licence id → client groups reserving seats of it
}

type clientGroup struct {
	name    string
	clients []string
	nets    []netip.Prefix
}

// compileSettings validates settings and prepares them for evaluation.
func compileSettings(s Settings) (*rules, error) {
	r := &rules{
		allowUsers:      s.Access.AllowUsers,
		denyUsers:       s.Access.DenyUsers,
		allowedPrinters: s.AllowedPrinters,
		groupPatterns:   map[string][]string{},
		partitions:      s.Partitions,
	}
	var err error
	if err = checkPatterns("settings.access.allowUsers", s.Access.AllowUsers); err != nil {
		return nil, err
	}
	if err = checkPatterns("settings.access.denyUsers", s.Access.DenyUsers); err != nil {
		return nil, err
	}
	if err = checkPatterns("settings.allowedPrinters", s.AllowedPrinters); err != nil {
		return nil, err
	}
	if r.allowNets, err = parseNets("settings.access.allowAddresses", s.Access.AllowAddresses); err != nil {
		return nil, err
	}
	if r.denyNets, err = parseNets("settings.access.denyAddresses", s.Access.DenyAddresses); err != nil {
		return nil, err
	}
	for group, patterns := range s.PrinterGroups {
		if err := checkPatterns("settings.printerGroups."+group, patterns); err != nil {
			return nil, err
		}
	}
	for group, limits := range s.Partitions {
		patterns, ok := s.PrinterGroups[group]
		if !ok {
			return nil, fieldErrorf("settings.partitions."+group, "printer group %q is not defined in printerGroups", group)
		}
		for lic, max := range limits {
			if max < 0 {
				return nil, fieldErrorf("settings.partitions."+group+"."+lic, "maximum seats is %d, must not be negative", max)
			}
		}
		r.groupPatterns[group] = patterns
	}
	if err := r.compileReservations(s); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rules) compileReservations(s Settings) error {
	groups := map[string]clientGroup{}
	for name, g := range s.ClientGroups {
		field := "settings.clientGroups." + name
		if len(g.Clients) == 0 && len(g.Addresses) == 0 {
			return fieldErrorf(field, "names neither clients nor addresses; a group needs at least one")
		}
		if err := checkPatterns(field+".clients", g.Clients); err != nil {
			return err
		}
		nets, err := parseNets(field+".addresses", g.Addresses)
		if err != nil {
			return err
		}
		groups[name] = clientGroup{name: name, clients: g.Clients, nets: nets}
	}
	r.reservations, r.reservedOn = s.Reservations, map[string][]string{}
	for name, seats := range s.Reservations {
		g, ok := groups[name]
		if !ok {
			return fieldErrorf("settings.reservations."+name, "client group %q is not defined in clientGroups", name)
		}
		for lic, n := range seats {
			if n < 0 {
				return fieldErrorf("settings.reservations."+name+"."+lic, "reserved seats are %d, must not be negative", n)
			}
			if n > 0 {
				r.reservedOn[lic] = append(r.reservedOn[lic], name)
			}
		}
		r.clientGroups = append(r.clientGroups, g)
	}
	sort.Slice(r.clientGroups, func(i, j int) bool { return r.clientGroups[i].name < r.clientGroups[j].name })
	for _, names := range r.reservedOn {
		sort.Strings(names)
	}
	return nil
}

// clientGroupOf returns the first client group with reservations, by name,
// that client at addr belongs to; "" when none.
func (r *rules) clientGroupOf(client string, addr netip.Addr) string {
	for _, g := range r.clientGroups {
		if len(g.clients) > 0 && !matchAny(g.clients, client) {
			continue
		}
		if len(g.nets) > 0 && (!addr.IsValid() || !containsAddr(g.nets, addr.Unmap())) {
			continue
		}
		return g.name
	}
	return ""
}

func checkPatterns(field string, patterns []string) error {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return fieldErrorf(field, "pattern %q is not a valid glob", p)
		}
	}
	return nil
}

func parseNets(field string, cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		var p netip.Prefix
		var err error
		if strings.Contains(c, "/") {
			p, err = netip.ParsePrefix(c)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(c); err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, fieldErrorf(field, "%q is not an address or CIDR", c)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

func containsAddr(nets []netip.Prefix, a netip.Addr) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// admit returns why a checkout by client from addr for printer is refused,
// or "" when the access rules and printer list allow it.
func (r *rules) admit(client string, addr netip.Addr, printer string) string {
	switch {
	case matchAny(r.denyUsers, client):
		return fmt.Sprintf("client %q is denied by the access rules", client)
	case len(r.allowUsers) > 0 && !matchAny(r.allowUsers, client):
		return fmt.Sprintf("client %q is not in the allowed users", client)
	case addr.IsValid() && containsAddr(r.denyNets, addr.Unmap()):
		return fmt.Sprintf("address %s is denied by the access rules", addr)
	case len(r.allowNets) > 0 && (!addr.IsValid() || !containsAddr(r.allowNets, addr.Unmap())):
		return fmt.Sprintf("address %s is not in the allowed addresses", addr)
	case len(r.allowedPrinters) > 0 && !matchAny(r.allowedPrinters, printer):
		return fmt.Sprintf("printer %q is not in the allowed printers", printer)
	}
	return ""
}

// partitionsOf returns the printer groups with partitions that contain printer, sorted.
func (r *rules) partitionsOf(printer string) []string {
	var groups []string
	for g, patterns := range r.groupPatterns {
		if matchAny(patterns, printer) {
			groups = append(groups, g)
		}
	}
	sort.Strings(groups)
	return groups
}
