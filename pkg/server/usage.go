package server

import (
	"log/slog"
	"sort"
	"strconv"
	"time"
)

// Usage statistics are kept per month, licence and printer, within bounds no
// client can push them past:
//
//   - A month holds at most rowsPerPeriod rows of named printers; a printer
//     beyond them is counted in the row of printer "*" (OtherPrinter) of its
//     licence and month.
//   - Months before the previous one keep one "*" row per licence: when a
//     new month begins, the rows of the month before the previous one are
//     added into their licence's "*" row.
//   - Months older than the last `months` (the current one included) are
//     dropped.
//   - The rows' JSON stays below budget bytes. A new row of a named printer
//     that does not fit folds the oldest months that still have such rows;
//     when that is not enough the usage is counted under "*". A new "*" row
//     that does not fit folds older months, then its own month, then drops
//     the oldest months; if even then it does not fit the usage is not
//     counted. Totals are kept as long as anything can be.
//
// Counters saturate at the int64 maximum.

// usageKey identifies a usage row.
type usageKey struct{ period, license, printer string }

// usageLimits bound a usage table.
type usageLimits struct {
	rowsPerPeriod int // rows of named printers per period
	months        int // periods kept, the latest one included
	budget        int // bytes of the rows' JSON
}

// usageTable holds usage statistics within their limits. It is not safe for
// concurrent use; the server guards it with its mutex.
type usageTable struct {
	lim     usageLimits
	rows    map[usageKey]*UsageRecord
	bytes   int            // upper bound of the rows' JSON, see usageRowBytes
	periods map[string]int // period → rows
	detail  map[string]int // period → rows of named printers
	latest  string         // the latest period counted
	corr    *Corrections
	log     *slog.Logger // nil: no log of reached caps
}

func newUsageTable(lim usageLimits, corr *Corrections, log *slog.Logger) *usageTable {
	return &usageTable{
		lim: lim, corr: corr, log: log,
		rows: map[usageKey]*UsageRecord{}, periods: map[string]int{}, detail: map[string]int{},
	}
}

// periodOf is the month of t, "YYYY-MM" in UTC.
func periodOf(t time.Time) string { return t.UTC().Format("2006-01") }

// periodIndex numbers the months ("YYYY-MM") consecutively; -1 when p is not
// a month.
func periodIndex(p string) int {
	if len(p) != 7 || p[4] != '-' {
		return -1
	}
	y, err1 := strconv.Atoi(p[:4])
	m, err2 := strconv.Atoi(p[5:])
	if err1 != nil || err2 != nil || p[0] == '+' || p[0] == '-' || p[5] == '+' || p[5] == '-' || m < 1 || m > 12 {
		return -1
	}
	return y*12 + m - 1
}

// record returns the row that counts usage of printer on lic at now, creating
// it within the limits; nil when nothing fits (the usage is not counted).
func (t *usageTable) record(lic, printer string, now time.Time) *UsageRecord {
	p := periodOf(now)
	switch {
	case p > t.latest:
		t.advance(p)
	case p < t.latest:
		p = t.latest // the clock went back: count in the latest month
	}
	u, folded := t.row(usageKey{p, lic, printer})
	switch {
	case u == nil:
		t.corr.UncountedUsage++
	case folded:
		t.corr.OverflowUsage++
	}
	return u
}

// advance makes p the latest period: periods before the previous one are
// folded into "*" rows, periods past retention dropped.
func (t *usageTable) advance(p string) {
	t.latest = p
	cur := periodIndex(p)
	for q := range t.periods {
		switch i := periodIndex(q); {
		case i <= cur-t.lim.months:
			t.drop(q)
		case i < cur-1 && t.detail[q] > 0:
			t.fold(q)
		}
	}
}

// row finds or creates the row of k, or the "*" row of its licence and
// period when k gets no row of its own (folded); nil when no row fits or k's
// period is past retention.
func (t *usageTable) row(k usageKey) (u *UsageRecord, folded bool) {
	if u := t.rows[k]; u != nil {
		return u, false
	}
	if t.latest != "" {
		i, cur := periodIndex(k.period), periodIndex(t.latest)
		if i <= cur-t.lim.months {
			return nil, false
		}
		if i < cur-1 && k.printer != OtherPrinter {
			folded, k.printer = true, OtherPrinter
			if u := t.rows[k]; u != nil {
				return u, true
			}
		}
	}
	if k.printer != OtherPrinter {
		if t.detail[k.period] < t.lim.rowsPerPeriod {
			if u := t.create(k, false); u != nil {
				return u, false
			}
		}
		folded, k.printer = true, OtherPrinter
		if u := t.rows[k]; u != nil {
			return u, true
		}
	}
	return t.create(k, true), folded
}

// create adds an empty row for k, making room by folding older periods and,
// with last (for "*" rows), k's own period and then dropping older periods.
func (t *usageTable) create(k usageKey, last bool) *UsageRecord {
	u := &UsageRecord{License: k.license, Printer: k.printer, Period: k.period}
	size := usageRowBytes(u)
	for t.bytes+size > t.lim.budget {
		if !t.shrink(k.period, last) {
			return nil
		}
		if u := t.rows[k]; u != nil { // folding created it
			return u
		}
	}
	t.rows[k] = u
	t.bytes += size
	t.periods[k.period]++
	if k.printer != OtherPrinter {
		t.detail[k.period]++
		if t.detail[k.period] == t.lim.rowsPerPeriod && t.log != nil {
			t.log.Warn("Usage statistics reached their row cap for the month; further printers are counted under printer \"*\"",
				"period", k.period, "rows", t.lim.rowsPerPeriod)
		}
	}
	return u
}

// shrink frees room for a row of period keep: it folds the oldest period
// before keep that has rows of named printers; else, with last, it folds
// keep, else drops the oldest period before keep. It reports whether it did
// any.
func (t *usageTable) shrink(keep string, last bool) bool {
	oldestDetail, oldest := "", ""
	for q := range t.periods {
		if q >= keep {
			continue
		}
		if oldest == "" || q < oldest {
			oldest = q
		}
		if t.detail[q] > 0 && (oldestDetail == "" || q < oldestDetail) {
			oldestDetail = q
		}
	}
	switch {
	case oldestDetail != "":
		t.fold(oldestDetail)
	case !last:
		return false
	case t.detail[keep] > 0:
		t.fold(keep)
	case oldest != "":
		t.drop(oldest)
	default:
		return false
	}
	return true
}

// fold adds the rows of named printers of period p into the "*" row of
// their licence. It never grows the table: "*" is the shortest name.
func (t *usageTable) fold(p string) {
	for k, u := range t.rows {
		if k.period != p || k.printer == OtherPrinter {
			continue
		}
		delete(t.rows, k)
		t.bytes -= usageRowBytes(u)
		t.periods[p]--
		t.corr.FoldedUsageRows++
		ok := usageKey{p, k.license, OtherPrinter}
		if o := t.rows[ok]; o != nil {
			t.merge(o, u)
			continue
		}
		u.Printer = OtherPrinter
		t.rows[ok] = u
		t.bytes += usageRowBytes(u)
		t.periods[p]++
	}
	delete(t.detail, p)
}

// drop removes every row of period p.
func (t *usageTable) drop(p string) {
	for k, u := range t.rows {
		if k.period == p {
			delete(t.rows, k)
			t.bytes -= usageRowBytes(u)
			t.corr.DroppedUsageRows++
		}
	}
	delete(t.periods, p)
	delete(t.detail, p)
}

// merge adds the counts of u into dst.
func (t *usageTable) merge(dst *UsageRecord, u *UsageRecord) {
	t.add(&dst.Checkouts, int64(u.Checkouts))
	t.add(&dst.Jobs, int64(u.Jobs))
	t.add(&dst.Labels, int64(u.Labels))
	if u.LastUse.After(dst.LastUse) {
		dst.LastUse = u.LastUse
	}
}

// add adds n to a counter, saturating.
func (t *usageTable) add(c *Count, n int64) {
	if addSat(c, n) {
		t.corr.SaturatedCounts++
	}
}

// load adds rows written elsewhere (an imported snapshot, the store): counts
// are clamped to be non-negative, rows without a valid period take the month
// of their last use (or of fallback), duplicates are merged, and the limits
// apply. Newer periods go first, so the limits cost the oldest data.
func (t *usageTable) load(rows []UsageRecord, fallback time.Time) {
	in := make([]UsageRecord, len(rows))
	latest := t.latest
	for i, u := range rows {
		for _, c := range []*Count{&u.Checkouts, &u.Jobs, &u.Labels} {
			if *c < 0 {
				*c = 0
				t.corr.ClampedCounts++
			}
		}
		if periodIndex(u.Period) < 0 {
			if u.LastUse.IsZero() {
				u.Period = periodOf(fallback)
			} else {
				u.Period = periodOf(u.LastUse)
			}
		}
		if u.Period > latest {
			latest = u.Period
		}
		in[i] = u
	}
	if latest > t.latest {
		t.advance(latest)
	}
	sort.Slice(in, func(i, j int) bool {
		a, b := &in[i], &in[j]
		if a.Period != b.Period {
			return a.Period > b.Period
		}
		if a.License != b.License {
			return a.License < b.License
		}
		return a.Printer < b.Printer
	})
	for i := range in {
		u := &in[i]
		k := usageKey{u.Period, u.License, u.Printer}
		existed := t.rows[k] != nil
		r, folded := t.row(k)
		switch {
		case r == nil:
			t.corr.DroppedUsageRows++
			continue
		case folded:
			t.corr.FoldedUsageRows++
		case existed:
			t.corr.MergedUsageRows++
		}
		t.merge(r, u)
	}
}

// records returns a copy of the rows, sorted by period, licence and printer.
func (t *usageTable) records() []UsageRecord {
	out := make([]UsageRecord, 0, len(t.rows))
	for _, u := range t.rows {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.Period != b.Period {
			return a.Period < b.Period
		}
		if a.License != b.License {
			return a.License < b.License
		}
		return a.Printer < b.Printer
	})
	return out
}

// defaultUsageLimits fills unset limits with the defaults and keeps the
// budget within UsageBudgetBytes.
func defaultUsageLimits(rows, months int) usageLimits {
	if rows <= 0 {
		rows = DefaultUsageRowsPerPeriod
	}
	if months <= 0 {
		months = DefaultUsageMonths
	}
	return usageLimits{rowsPerPeriod: rows, months: months, budget: UsageBudgetBytes}
}
