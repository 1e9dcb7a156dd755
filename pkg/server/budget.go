package server

import (
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// The checkouts' share of the synced state.
//
// The agent publishes the checkouts as gzip-compressed JSON in a Secret of at
// most 900 KiB. The number of checkouts is bounded by the licences' printer
// counts, but what each weighs is up to the clients (names of up to
// MaxNameBytes bytes), and a licence with thousands of printers is
// legitimate. So the server budgets the compressed size (coBudget) and
// refuses a new checkout that would not fit with 507 state_full.
//
// The uncompressed size is an upper bound of the compressed one (gzip adds a
// few bytes per 32 KiB block at most), exact to maintain: while it fits, no
// measurement is needed. Beyond it the server measures the compressed size
// of its checkouts, as the agent would encode them, and estimates from there
// the measured size plus everything added since, uncompressed, with a margin
// per checkout. It measures again only when the estimate does not fit and
// the checkouts changed since the last measurement, at most once a second
// unless an eighth of the budget was added since: a client that keeps asking
// while the state is full costs one measurement a second.

// measurement is the last measured compressed size of the checkouts.
type measurement struct {
	valid   bool
	size    int       // gzip-compressed JSON bytes
	added   int64     // coAdded when the checkouts were copied
	changes uint64    // coChanges then
	imports uint64    // coImports then
	at      time.Time // when
}

// perCheckoutMargin is added to the estimate for every checkout added after
// a measurement: inserting a record into the sorted array can cost the
// compressor a few bytes beyond the record's own.
const perCheckoutMargin = 16

// checkoutArrayBytes is the JSON around the array: brackets and the
// encoder's newline.
const checkoutArrayBytes = 3

func (s *Server) coEstimateLocked() int {
	est := s.coBytes
	if m := s.coMeasure; m.valid {
		if e := m.size + int(s.coAdded-m.added); e < est {
			est = e
		}
	}
	return est + checkoutArrayBytes
}

// coFitsLocked reports whether a checkout of size bytes fits the budget.
func (s *Server) coFitsLocked(size int) bool {
	return s.coEstimateLocked()+size <= s.coBudget
}

// coMeasureUsefulLocked reports whether measuring again may show room.
func (s *Server) coMeasureUsefulLocked(now time.Time) bool {
	m := s.coMeasure
	if !m.valid {
		return true
	}
	if s.coChanges == m.changes {
		return false
	}
	return now.Sub(m.at) >= time.Second || now.Before(m.at) || s.coAdded-m.added >= int64(s.coBudget/8)
}

// measureCheckouts measures the compressed size of the checkouts without
// holding the server's lock while it compresses.
func (s *Server) measureCheckouts() {
	s.measureMu.Lock()
	defer s.measureMu.Unlock()
	s.mu.Lock()
	if s.coMeasure.valid && s.coMeasure.changes == s.coChanges {
		s.mu.Unlock()
		return
	}
	recs := make([]CheckoutRecord, 0, len(s.checkouts))
	for _, c := range s.checkouts {
		recs = append(recs, c.CheckoutRecord)
	}
	m := measurement{valid: true, added: s.coAdded, changes: s.coChanges, imports: s.coImports, at: s.now()}
	s.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	m.size = gzipJSONSize(recs)
	s.mu.Lock()
	if m.imports == s.coImports && (!s.coMeasure.valid || s.coMeasure.added <= m.added) {
		s.coMeasure = m
	}
	s.mu.Unlock()
}

// gzipJSONSize is the size of v encoded as the agent encodes the synced
// state: JSON (with a trailing newline) compressed by gzip at the default
// level.
func gzipJSONSize(v any) int {
	var n countWriter
	w, _ := gzipWriters.Get().(*gzip.Writer)
	if w == nil {
		w = gzip.NewWriter(&n)
	} else {
		w.Reset(&n)
	}
	defer gzipWriters.Put(w)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return int(^uint(0) >> 1)
	}
	_ = w.Close()
	return int(n)
}

// gzipWriters keeps compressors between measurements: each holds about a
// megabyte of tables.
var gzipWriters sync.Pool

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

func (s *Server) stateFullLocked() *apiError {
	return newAPIError(http.StatusInsufficientStorage, CodeStateFull,
		"the group's synchronised state is full (%d checkouts); no new checkout fits until some are released or expire", len(s.checkouts))
}

// sourceKey is what the per-address limit counts by: the address for IPv4,
// its /64 for IPv6 (one host usually holds a whole /64); "" when unknown.
func sourceKey(addr netip.Addr) string {
	if !addr.IsValid() {
		return ""
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr.String()
	}
	return netip.PrefixFrom(addr, 64).Masked().String()
}

// parseAddress reads CheckoutRecord.Address; the zero Addr when empty or
// malformed.
func parseAddress(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}
