package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"time"
)

// apiError is an error with its HTTP status and response body.
type apiError struct {
	status int
	body   Error
}

func (e *apiError) Error() string { return e.body.Message }

func newAPIError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, body: Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// notActiveLocked is the answer of a member that does not serve.
func (s *Server) notActiveLocked() *apiError {
	return &apiError{status: http.StatusServiceUnavailable, body: Error{Code: CodeNotActive, Message: "not active", Active: s.active}}
}

// Checkout grants a printer seat. When id is not empty the request
// re-asserts a checkout under that id (after a failover the new active
// member may not know it). A client that already holds a seat for the printer
// on the resolved licence gets that checkout back, renewed.
func (s *Server) Checkout(req CheckoutRequest, id string, addr netip.Addr) (Checkout, error) {
	if err := validateCheckoutRequest(req); err != nil {
		return Checkout{}, err
	}
	if len(id) > 128 {
		return Checkout{}, fieldErrorf("id", "checkout ids are at most 128 bytes")
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.effectiveRoleLocked() != RoleActive {
		return Checkout{}, s.notActiveLocked()
	}
	if c, ok := s.checkouts[id]; ok {
		return s.renewLocked(c, &req, now)
	}
	if reason := s.rules.admit(req.Client, addr, req.Printer); reason != "" {
		return Checkout{}, newAPIError(http.StatusForbidden, CodeForbidden, "%s", reason)
	}
	lic, err := s.resolveLocked(req.License)
	if err != nil {
		return Checkout{}, err
	}
	// The licence directory is re-verified periodically; do not grant a
	// seat in between on a licence that has just expired.
	if l := s.licenses[lic]; now.After(l.NotAfter) {
		return Checkout{}, newAPIError(http.StatusConflict, CodeLicenseInvalid, "licence %s expired at %s", lic, l.NotAfter.Format(time.RFC3339))
	}
	if c, ok := s.seats[seatKey{lic, req.Client, req.Printer}]; ok {
		return s.renewLocked(c, nil, now)
	}
	if max := s.opts.MaxCheckoutsPerClient; max > 0 && s.perClient[req.Client] >= max {
		return Checkout{}, newAPIError(http.StatusTooManyRequests, CodeTooManyCheckouts,
			"client %q already holds %d checkouts, the limit", req.Client, max)
	}
	parts := s.rules.partitionsOf(req.Printer)
	if err := s.seatFreeLocked(lic, parts, now); err != nil {
		return Checkout{}, err
	}
	if id == "" {
		id = newID()
	}
	c := &checkout{
		CheckoutRecord: CheckoutRecord{
			ID: id, Client: req.Client, Printer: req.Printer, Requested: req.License,
			License: lic, ExpiresAt: now.Add(s.opts.CheckoutTTL),
		},
		partitions: parts,
	}
	s.addLocked(c)
	u := s.usageLocked(lic, req.Printer)
	u.Checkouts++
	u.LastUse = now
	s.usageDirty = true
	s.changedLocked()
	return s.viewLocked(c), nil
}

func validateCheckoutRequest(req CheckoutRequest) error {
	for _, f := range []struct{ name, value string }{
		{"client", req.Client}, {"printer", req.Printer}, {"license", req.License},
	} {
		if f.value == "" {
			return fieldErrorf(f.name, "must not be empty")
		}
		if len(f.value) > 256 {
			return fieldErrorf(f.name, "is longer than 256 bytes")
		}
	}
	return nil
}

// renewLocked extends a known checkout. A re-assertion must come from the
// same client and printer.
func (s *Server) renewLocked(c *checkout, req *CheckoutRequest, now time.Time) (Checkout, error) {
	if req != nil && (req.Client != c.Client || req.Printer != c.Printer) {
		return Checkout{}, newAPIError(http.StatusConflict, CodeConflict,
			"checkout %s belongs to another client or printer", c.ID)
	}
	c.ExpiresAt = now.Add(s.opts.CheckoutTTL)
	return s.viewLocked(c), nil
}

func (s *Server) viewLocked(c *checkout) Checkout {
	return Checkout{ID: c.ID, License: c.License, ExpiresAt: c.ExpiresAt, Member: s.opts.Member}
}

// resolveLocked maps what a client asked for (licence id, alias of a peer's
// licence id, or product name) to a valid local licence id. For a product
// name the licence with most free seats wins.
func (s *Server) resolveLocked(name string) (string, error) {
	if _, ok := s.licenses[name]; ok {
		return name, nil
	}
	if local, ok := s.aliases[name]; ok {
		if _, ok := s.licenses[local]; ok {
			return local, nil
		}
		return "", newAPIError(http.StatusConflict, CodeLicenseInvalid,
			"licence %q maps to local licence %q, which is not valid here", name, local)
	}
	best, bestFree := "", -1
	for id, l := range s.licenses {
		if l.Product != name {
			continue
		}
		if free := l.Printers - s.inUse[id]; free > bestFree || (free == bestFree && id < best) {
			best, bestFree = id, free
		}
	}
	if best != "" {
		return best, nil
	}
	for _, inv := range s.inventory {
		if inv.ID == name || inv.Product == name {
			return "", newAPIError(http.StatusConflict, CodeLicenseInvalid, "licence %q cannot be used: %s", name, inv.Reason)
		}
	}
	return "", newAPIError(http.StatusNotFound, CodeUnknownLicense, "no licence or product %q on this server", name)
}

// seatFreeLocked checks the licence's printer count and the partitions of
// the printer's groups, expiring stale checkouts before refusing.
func (s *Server) seatFreeLocked(lic string, parts []string, now time.Time) error {
	err := s.seatLimitLocked(lic, parts)
	if err != nil && s.expireLocked(now) > 0 {
		err = s.seatLimitLocked(lic, parts)
	}
	return err
}

func (s *Server) seatLimitLocked(lic string, parts []string) error {
	if max := s.licenses[lic].Printers; s.inUse[lic] >= max {
		return newAPIError(http.StatusConflict, CodeNoSeat, "all %d printer seats of licence %s are in use", max, lic)
	}
	for _, g := range parts {
		if max, ok := s.rules.partitions[g][lic]; ok && s.partUse[g][lic] >= max {
			return newAPIError(http.StatusConflict, CodeNoSeat,
				"printer group %s may use %d seats of licence %s and uses them all", g, max, lic)
		}
	}
	return nil
}

func (s *Server) addLocked(c *checkout) {
	s.checkouts[c.ID] = c
	s.seats[seatKey{c.License, c.Client, c.Printer}] = c
	s.inUse[c.License]++
	s.perClient[c.Client]++
	for _, g := range c.partitions {
		if s.partUse[g] == nil {
			s.partUse[g] = map[string]int{}
		}
		s.partUse[g][c.License]++
	}
}

func (s *Server) removeLocked(c *checkout) {
	delete(s.checkouts, c.ID)
	delete(s.seats, seatKey{c.License, c.Client, c.Printer})
	decr(s.inUse, c.License)
	decr(s.perClient, c.Client)
	for _, g := range c.partitions {
		decr(s.partUse[g], c.License)
	}
}

func decr(m map[string]int, k string) {
	if m[k] <= 1 {
		delete(m, k)
		return
	}
	m[k]--
}

// Heartbeat renews a known checkout.
func (s *Server) Heartbeat(id string) (Checkout, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.effectiveRoleLocked() != RoleActive {
		return Checkout{}, s.notActiveLocked()
	}
	c, ok := s.checkouts[id]
	if !ok {
		return Checkout{}, newAPIError(http.StatusNotFound, CodeNotFound, "checkout %s is not known here; send the full checkout body to re-assert it", id)
	}
	return s.renewLocked(c, nil, now)
}

// Release frees the seat of a checkout.
func (s *Server) Release(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.effectiveRoleLocked() != RoleActive {
		return s.notActiveLocked()
	}
	c, ok := s.checkouts[id]
	if !ok {
		return newAPIError(http.StatusNotFound, CodeNotFound, "checkout %s is not known", id)
	}
	s.removeLocked(c)
	s.changedLocked()
	return nil
}

// ReportUsage adds printed jobs and labels to the statistics of a checkout's
// licence and printer.
func (s *Server) ReportUsage(id string, r UsageReport) error {
	if r.Jobs < 0 {
		return fieldErrorf("jobs", "must not be negative, got %d", r.Jobs)
	}
	if r.Labels < 0 {
		return fieldErrorf("labels", "must not be negative, got %d", r.Labels)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.effectiveRoleLocked() != RoleActive {
		return s.notActiveLocked()
	}
	c, ok := s.checkouts[id]
	if !ok {
		return newAPIError(http.StatusNotFound, CodeNotFound, "checkout %s is not known", id)
	}
	u := s.usageLocked(c.License, c.Printer)
	u.Jobs += r.Jobs
	u.Labels += r.Labels
	u.LastUse = now
	s.usageDirty = true
	s.changedLocked()
	return nil
}

func (s *Server) usageLocked(lic, printer string) *UsageRecord {
	k := usageKey{lic, printer}
	u, ok := s.usage[k]
	if !ok {
		u = &UsageRecord{License: lic, Printer: printer}
		s.usage[k] = u
	}
	return u
}

// Usage returns the usage statistics, sorted by licence and printer.
func (s *Server) Usage() []UsageRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usageRecordsLocked()
}

func (s *Server) usageRecordsLocked() []UsageRecord {
	out := make([]UsageRecord, 0, len(s.usage))
	for _, u := range s.usage {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].License != out[j].License {
			return out[i].License < out[j].License
		}
		return out[i].Printer < out[j].Printer
	})
	return out
}

// ExpireCheckouts frees the seats of checkouts whose TTL passed. Only the
// active member expires checkouts: the others hold a copy of the active
// member's state and must not change their revision on their own.
func (s *Server) ExpireCheckouts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.effectiveRoleLocked() != RoleActive {
		return 0
	}
	return s.expireLocked(s.now())
}

func (s *Server) expireLocked(now time.Time) int {
	n := 0
	for _, c := range s.checkouts {
		if now.After(c.ExpiresAt) {
			s.removeLocked(c)
			n++
		}
	}
	if n > 0 {
		s.changedLocked()
	}
	return n
}
