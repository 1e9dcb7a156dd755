package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
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
// on the resolved licence gets that checkout back, renewed. addr is the
// connection's remote address (the zero Addr when unknown).
func (s *Server) Checkout(req CheckoutRequest, id string, addr netip.Addr) (Checkout, error) {
	if err := validateCheckoutRequest(req); err != nil {
		return Checkout{}, err
	}
	if id != "" {
		if err := validID(id); err != nil {
			return Checkout{}, err
		}
	}
	if addr.IsValid() {
		addr = addr.Unmap().WithZone("")
	}
	c, measure, err := s.checkout(req, id, addr, true)
	if measure {
		s.measureCheckouts()
		c, _, err = s.checkout(req, id, addr, false)
	}
	return c, err
}

// checkout does the work of Checkout. When the new checkout does not fit the
// state budget by the current estimate and a measurement may help, it
// reports measure (if allowed) instead of refusing.
func (s *Server) checkout(req CheckoutRequest, id string, addr netip.Addr, mayMeasure bool) (Checkout, bool, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.effectiveRoleLocked() != RoleActive {
		return Checkout{}, false, s.notActiveLocked()
	}
	if c, ok := s.checkouts[id]; ok {
		co, err := s.renewLocked(c, &req, now)
		return co, false, err
	}
	if reason := s.rules.admit(req.Client, addr, req.Printer); reason != "" {
		return Checkout{}, false, newAPIError(http.StatusForbidden, CodeForbidden, "%s", reason)
	}
	group := s.rules.clientGroupOf(req.Client, addr)
	lic, err := s.resolveLocked(req.License, group)
	if err != nil {
		return Checkout{}, false, err
	}
	// The licence directory is re-verified periodically; do not grant a
	// seat in between on a licence that has just expired.
	if l := s.licenses[lic]; now.After(l.NotAfter) {
		return Checkout{}, false, newAPIError(http.StatusConflict, CodeLicenseInvalid, "licence %s expired at %s", lic, l.NotAfter.Format(time.RFC3339))
	}
	if c, ok := s.seats[seatKey{lic, req.Client, req.Printer}]; ok {
		co, err := s.renewLocked(c, nil, now)
		return co, false, err
	}
	if max := s.opts.MaxCheckoutsPerClient; max > 0 && s.perClient[req.Client] >= max {
		return Checkout{}, false, newAPIError(http.StatusTooManyRequests, CodeTooManyCheckouts,
			"client %q already holds %d checkouts, the limit", req.Client, max)
	}
	source := sourceKey(addr)
	if max := s.maxPerSource(); max > 0 && source != "" && s.perSource[source] >= max {
		return Checkout{}, false, newAPIError(http.StatusTooManyRequests, CodeTooManyCheckouts,
			"address %s already holds %d checkouts, the limit per source address, whatever the client ids", source, max)
	}
	c := &checkout{
		CheckoutRecord: CheckoutRecord{
			ID: id, Client: req.Client, Printer: req.Printer, Requested: req.License,
			License: lic, ExpiresAt: now.Add(s.opts.CheckoutTTL),
		},
		partitions: s.rules.partitionsOf(req.Printer),
		group:      group,
		source:     source,
	}
	if addr.IsValid() {
		c.Address = addr.String()
	}
	if err := s.seatFreeLocked(c, now); err != nil {
		return Checkout{}, false, err
	}
	if c.ID == "" {
		c.ID = newID()
	}
	c.bytes = checkoutRowBytes(&c.CheckoutRecord)
	if !s.coFitsLocked(c.bytes) && (s.expireLocked(now) == 0 || !s.coFitsLocked(c.bytes)) {
		if mayMeasure && s.coMeasureUsefulLocked(now) {
			return Checkout{}, true, nil
		}
		return Checkout{}, false, s.stateFullLocked()
	}
	s.addLocked(c)
	if u := s.usage.record(lic, req.Printer, now); u != nil {
		s.usage.add(&u.Checkouts, 1)
		u.LastUse = now
	}
	s.usageDirty = true
	s.changedLocked()
	return s.viewLocked(c), false, nil
}

// maxPerSource is the per-address limit in effect; 0 means none.
func (s *Server) maxPerSource() int {
	switch n := s.opts.MaxCheckoutsPerAddress; {
	case n < 0:
		return 0
	case n == 0:
		return s.opts.MaxCheckoutsPerClient
	default:
		return n
	}
}

func validateCheckoutRequest(req CheckoutRequest) error {
	for _, f := range []struct{ name, value string }{
		{"client", req.Client}, {"printer", req.Printer}, {"license", req.License},
	} {
		if err := validName(f.name, f.value); err != nil {
			return err
		}
	}
	if req.Printer == OtherPrinter {
		return fieldErrorf("printer", "%q is reserved: it names the usage statistics of other printers", OtherPrinter)
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
// name the licence with most seats free for a client of group (see
// freeLocked) wins.
func (s *Server) resolveLocked(name, group string) (string, error) {
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
		if free, _ := s.freeLocked(id, group); free > bestFree || (free == bestFree && id < best) {
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

// seatFreeLocked checks the licence's printer count, its reservations and
// the partitions of the printer's groups for the new checkout c, expiring
// stale checkouts before refusing.
func (s *Server) seatFreeLocked(c *checkout, now time.Time) error {
	err := s.seatLimitLocked(c)
	if err != nil && s.expireLocked(now) > 0 {
		err = s.seatLimitLocked(c)
	}
	return err
}

// freeLocked returns the seats of lic a client of the client group group
// ("" for none) may take: a member of a group whose reservation is not used
// up may take any free seat; anybody else only seats beyond every group's
// unused reservation. It also returns the groups holding back seats from
// this client.
func (s *Server) freeLocked(lic, group string) (int, []string) {
	free := s.licenses[lic].Printers - s.inUse[lic]
	if free <= 0 {
		return free, nil
	}
	groups := s.rules.reservedOn[lic]
	if len(groups) == 0 || (group != "" && s.resUse[group][lic] < s.rules.reservations[group][lic]) {
		return free, nil
	}
	var holders []string
	for _, g := range groups {
		if n := s.rules.reservations[g][lic] - s.resUse[g][lic]; n > 0 {
			free -= n
			holders = append(holders, g)
		}
	}
	return free, holders
}

func (s *Server) seatLimitLocked(c *checkout) error {
	lic := c.License
	max := s.licenses[lic].Printers
	if s.inUse[lic] >= max {
		return newAPIError(http.StatusConflict, CodeNoSeat, "all %d printer seats of licence %s are in use", max, lic)
	}
	if free, holders := s.freeLocked(lic, c.group); free <= 0 {
		return newAPIError(http.StatusConflict, CodeNoSeat,
			"the %d free seats of licence %s are reserved for the client groups %s", max-s.inUse[lic], lic, strings.Join(holders, ", "))
	}
	parts := c.partitions
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
	if c.source != "" {
		s.perSource[c.source]++
	}
	for _, g := range c.partitions {
		incr2(s.partUse, g, c.License)
	}
	if c.group != "" {
		incr2(s.resUse, c.group, c.License)
	}
	s.coBytes += c.bytes
	s.coAdded += int64(c.bytes + perCheckoutMargin)
	s.coChanges++
}

func (s *Server) removeLocked(c *checkout) {
	delete(s.checkouts, c.ID)
	delete(s.seats, seatKey{c.License, c.Client, c.Printer})
	decr(s.inUse, c.License)
	decr(s.perClient, c.Client)
	if c.source != "" {
		decr(s.perSource, c.source)
	}
	for _, g := range c.partitions {
		decr(s.partUse[g], c.License)
	}
	if c.group != "" {
		decr(s.resUse[c.group], c.License)
	}
	s.coBytes -= c.bytes
	s.coChanges++
}

func incr2(m map[string]map[string]int, k1, k2 string) {
	if m[k1] == nil {
		m[k1] = map[string]int{}
	}
	m[k1][k2]++
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
	c, err := s.activeCheckoutLocked(id, "checkout %s is not known here; send the full checkout body to re-assert it")
	if err != nil {
		return Checkout{}, err
	}
	return s.renewLocked(c, nil, now)
}

// activeCheckoutLocked finds checkout id for a request that only the
// active server serves: an error when this server is not active, or
// unknown (a format taking the id) when it does not know the checkout.
func (s *Server) activeCheckoutLocked(id, unknown string) (*checkout, error) {
	if s.effectiveRoleLocked() != RoleActive {
		return nil, s.notActiveLocked()
	}
	c, ok := s.checkouts[id]
	if !ok {
		return nil, newAPIError(http.StatusNotFound, CodeNotFound, unknown, id)
	}
	return c, nil
}

// Release frees the seat of a checkout.
func (s *Server) Release(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.activeCheckoutLocked(id, "checkout %s is not known")
	if err != nil {
		return err
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
	c, err := s.activeCheckoutLocked(id, "checkout %s is not known")
	if err != nil {
		return err
	}
	if u := s.usage.record(c.License, c.Printer, now); u != nil {
		s.usage.add(&u.Jobs, r.Jobs)
		s.usage.add(&u.Labels, r.Labels)
		u.LastUse = now
	}
	s.usageDirty = true
	s.changedLocked()
	return nil
}

// Usage returns the usage statistics, sorted by period, licence and printer.
func (s *Server) Usage() []UsageRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage.records()
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
