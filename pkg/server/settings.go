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
	return r, nil
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
