package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/server"
)

// Keys of a pair backup's own usage statistics in <pair>-state, as its
// agent writes them (internal/agent/usage.go).
const (
	stateKeyBackupUsage = "backup-usage.json.gz"
)

// Usage dimensions.
const (
	dimServer  = "server"
	dimPeriod  = "period"
	dimLicense = "license"
	dimPrinter = "printer"
	dimClient  = "client"
)

// UsageRow is one row of `usage` output: the counts of one combination of
// the chosen dimensions. Dimensions not chosen are empty.
type UsageRow struct {
	Server  string `json:"server,omitempty"`
	Period  string `json:"period,omitempty"`
	License string `json:"license,omitempty"`
	Printer string `json:"printer,omitempty"`
	Client  string `json:"client,omitempty"`
	// Checkouts, Jobs and Labels are the usage statistics' counts; with
	// --by client, Checkouts counts the seats the client holds now.
	Checkouts int64      `json:"checkouts"`
	Jobs      int64      `json:"jobs"`
	Labels    int64      `json:"labels"`
	LastUse   *time.Time `json:"lastUse,omitempty"`
}

// usageSource is the statistics of one server: a triad's (its active
// member's, synced to all), or one side of a pair.
type usageSource struct {
	server string
	rows   []server.UsageRecord
}

func newUsageCmd(o *Options) *cobra.Command {
	var by, period, licence string
	var out *outputFlags
	cmd := &cobra.Command{
		Use:   "usage GROUP",
		Short: "Show a group's usage statistics (checkouts, jobs, labels) by licence, printer, period or client",
		Long: `Reads the usage statistics from the synced state <group>-state, through the API server — no pod is
entered. A triad's statistics are those its active member published: every checkout is counted by the member
that serves, and a member taking over starts from the synced statistics, so the active member's table already
holds the whole triad's usage (the standbys hold copies of it). A pair's servers count separately: the main's
statistics are in the state the main publishes, the backup's in the keys its agent adds; rows carry the
server's name.

The servers keep usage per month, licence and printer (within bounds: a row cap per month beyond which
printers count under "*", older months folded into "*", a size budget). --by chooses the columns the rows
are summed over (any of server, period, license, printer). --by client shows the seats each client holds
now, from the synced checkouts (the Secret <group>-state, which needs read access to Secrets): the servers
keep no usage history per client.`,
		Example: `  kubectl licenseha usage plant-a
  kubectl licenseha usage plant-a --by license --period 2026-11
  kubectl licenseha usage plant-b --by server,license -o csv > usage.csv
  kubectl licenseha usage plant-a --by client
  kubectl licenseha usage plant-a --by license -o jsonpath='{.items[*].license}'
  kubectl licenseha usage plant-a --by license -o custom-columns=LICENCE:.license,LABELS:.labels`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(o, true, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			dims, err := parseDims(by)
			if err != nil {
				return err
			}
			printer, output, err := out.rowsPrinter("usage rows")
			if err != nil {
				return err
			}
			if period != "" {
				if _, err := time.Parse("2006-01", period); err != nil {
					return fmt.Errorf("--period %q: give a month as YYYY-MM", period)
				}
			}
			ctx := cmd.Context()
			k, g, err := o.kubeGroup(ctx, args[0])
			if err != nil {
				return err
			}
			var rows []UsageRow
			if dims[dimClient] {
				checkouts, err := k.syncedCheckouts(ctx, g)
				if err != nil {
					return err
				}
				rows = clientRows(checkouts, dims, licence)
			} else {
				sources, err := k.usageSources(ctx, g)
				if err != nil {
					return err
				}
				rows = summarizeUsage(sources, dims, period, licence)
			}
			switch output {
			case "", "table", "wide", "csv":
				return renderUsage(o.Out, output, dims, rows)
			}
			return printRows(o.Out, out, printer, rows)
		},
	}
	out = newOutputFlags(cmd, "table", []string{"table", "csv"},
		"output format: table, wide (the same table), csv, json, yaml, jsonpath=..., go-template=..., custom-columns=... (templates see a v1 List of the rows)")
	cmd.Flags().StringVar(&by, "by", "server,period,license,printer", "columns to sum over, comma-separated: server, period, license, printer; or client (seats held now)")
	cmd.Flags().StringVar(&period, "period", "", "only this month (YYYY-MM, UTC)")
	cmd.Flags().StringVar(&licence, "license", "", "only this licence id")
	return cmd
}

func parseDims(by string) (map[string]bool, error) {
	dims := map[string]bool{}
	for _, d := range strings.Split(by, ",") {
		d = strings.TrimSpace(strings.ToLower(d))
		switch d {
		case dimServer, dimPeriod, dimLicense, dimPrinter, dimClient:
			dims[d] = true
		case "licence":
			dims[dimLicense] = true
		case "":
		default:
			return nil, fmt.Errorf("--by %q: %q is not a column; use server, period, license, printer or client", by, d)
		}
	}
	if dims[dimClient] && (dims[dimPeriod] || dims[dimPrinter]) {
		return nil, fmt.Errorf("--by %q: client combines with server and license only (the servers keep no usage history per client, only the seats clients hold now)", by)
	}
	return dims, nil
}

// usageSources reads the usage statistics from the synced state.
func (k *kube) usageSources(ctx context.Context, g *groupTarget) ([]usageSource, error) {
	cm, err := k.stateConfigMap(ctx, g.name)
	if err != nil {
		return nil, err
	}
	read := func(key string) ([]server.UsageRecord, error) {
		var rows []server.UsageRecord
		raw, err := gunzip(cm.BinaryData[key])
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &rows); err != nil {
			return nil, fmt.Errorf("reading %s of ConfigMap %s/%s: %w", key, k.ns, cm.Name, err)
		}
		return rows, nil
	}
	if g.kind == group.KindTriad {
		rows, err := read(stateKeyUsage)
		if err != nil {
			return nil, fmt.Errorf("ConfigMap %s/%s holds no usage statistics yet: %w", k.ns, cm.Name, err)
		}
		return []usageSource{{server: cm.Data[stateKeyMember], rows: rows}}, nil
	}
	var out []usageSource
	if rows, err := read(stateKeyUsage); err == nil {
		out = append(out, usageSource{server: "main", rows: rows})
	}
	if rows, err := read(stateKeyBackupUsage); err == nil {
		out = append(out, usageSource{server: "backup", rows: rows})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ConfigMap %s/%s holds no usage statistics yet from either server", k.ns, cm.Name)
	}
	return out, nil
}

// summarizeUsage sums the rows over the dimensions not chosen.
func summarizeUsage(sources []usageSource, dims map[string]bool, period, licence string) []UsageRow {
	sums := usageSums{}
	for _, src := range sources {
		for _, u := range src.rows {
			if (period != "" && u.Period != period) || (licence != "" && u.License != licence) {
				continue
			}
			r := sums.row(usageKey{server: src.server, period: u.Period, license: u.License, printer: u.Printer}.keep(dims))
			r.Checkouts = satAdd(r.Checkouts, int64(u.Checkouts))
			r.Jobs = satAdd(r.Jobs, int64(u.Jobs))
			r.Labels = satAdd(r.Labels, int64(u.Labels))
			if !u.LastUse.IsZero() && (r.LastUse == nil || u.LastUse.After(*r.LastUse)) {
				t := u.LastUse.UTC()
				r.LastUse = &t
			}
		}
	}
	return sums.sorted()
}

// usageKey is the dimensions of a row of output.
type usageKey struct{ server, period, license, printer, client string }

// keep blanks the dimensions not chosen.
func (k usageKey) keep(dims map[string]bool) usageKey {
	for d, v := range map[string]*string{dimServer: &k.server, dimPeriod: &k.period, dimLicense: &k.license, dimPrinter: &k.printer, dimClient: &k.client} {
		if !dims[d] {
			*v = ""
		}
	}
	return k
}

// usageSums are the rows being summed, by their dimensions.
type usageSums map[usageKey]*UsageRow

// row is the row of k, a new one the first time.
func (s usageSums) row(k usageKey) *UsageRow {
	r := s[k]
	if r == nil {
		r = &UsageRow{Server: k.server, Period: k.period, License: k.license, Printer: k.printer, Client: k.client}
		s[k] = r
	}
	return r
}

// sorted are the summed rows, sorted.
func (s usageSums) sorted() []UsageRow {
	out := make([]UsageRow, 0, len(s))
	for _, r := range s {
		out = append(out, *r)
	}
	sortRows(out)
	return out
}

func satAdd(a, b int64) int64 {
	if b > 0 && a > (1<<63-1)-b {
		return 1<<63 - 1
	}
	return a + b
}

func sortRows(rows []UsageRow) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		for _, c := range [][2]string{{a.Server, b.Server}, {a.Period, b.Period}, {a.License, b.License}, {a.Printer, b.Printer}, {a.Client, b.Client}} {
			if c[0] != c[1] {
				return c[0] < c[1]
			}
		}
		return false
	})
}

// syncedCheckouts reads the checkouts in the synced state Secret: a triad's
// (the active member's); a pair's main's.
func (k *kube) syncedCheckouts(ctx context.Context, g *groupTarget) ([]usageSourceCheckouts, error) {
	var sec corev1.Secret
	if err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: group.StateName(g.name)}, &sec); err != nil {
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("--by client reads the checkouts in Secret %s/%s, which you may not read: %w", k.ns, group.StateName(g.name), err)
		}
		return nil, err
	}
	raw, err := gunzip(sec.Data[stateKeyCheckouts])
	if err != nil {
		return nil, fmt.Errorf("Secret %s/%s holds no checkouts yet: %w", k.ns, sec.Name, err)
	}
	var cs []server.CheckoutRecord
	if err := json.Unmarshal(raw, &cs); err != nil {
		return nil, fmt.Errorf("reading %s of Secret %s/%s: %w", stateKeyCheckouts, k.ns, sec.Name, err)
	}
	srv := g.publisher
	return []usageSourceCheckouts{{server: srv, checkouts: cs}}, nil
}

type usageSourceCheckouts struct {
	server    string
	checkouts []server.CheckoutRecord
}

// clientRows counts the seats each client holds now.
func clientRows(sources []usageSourceCheckouts, dims map[string]bool, licence string) []UsageRow {
	sums := usageSums{}
	for _, src := range sources {
		for _, c := range src.checkouts {
			if licence != "" && c.License != licence {
				continue
			}
			k := usageKey{server: src.server, license: c.License}.keep(dims)
			k.client = c.Client
			sums.row(k).Checkouts++
		}
	}
	return sums.sorted()
}

// columns lists the output columns for dims, in order.
func columns(dims map[string]bool) []string {
	var cols []string
	for _, d := range []string{dimServer, dimPeriod, dimLicense, dimPrinter, dimClient} {
		if dims[d] {
			cols = append(cols, d)
		}
	}
	if dims[dimClient] {
		return append(cols, "seats")
	}
	return append(cols, "checkouts", "jobs", "labels", "lastUse")
}

func (r UsageRow) cell(col string) string {
	switch col {
	case dimServer:
		return r.Server
	case dimPeriod:
		return r.Period
	case dimLicense:
		return r.License
	case dimPrinter:
		return r.Printer
	case dimClient:
		return r.Client
	case "checkouts", "seats":
		return strconv.FormatInt(r.Checkouts, 10)
	case "jobs":
		return strconv.FormatInt(r.Jobs, 10)
	case "labels":
		return strconv.FormatInt(r.Labels, 10)
	case "lastUse":
		if r.LastUse == nil {
			return ""
		}
		return r.LastUse.Format(time.RFC3339)
	}
	return ""
}

func renderUsage(w io.Writer, format string, dims map[string]bool, rows []UsageRow) error {
	cols := columns(dims)
	if format == "json" {
		if rows == nil {
			rows = []UsageRow{}
		}
		return printJSON(w, rows)
	}
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = make([]string, len(cols))
		for j, c := range cols {
			cells[i][j] = r.cell(c)
		}
	}
	return renderCells(w, format, cols, cells, "No usage recorded.")
}

// csvSafe keeps a name a client chose (printers, clients) from being read
// as a formula by a spreadsheet.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// tableSafe keeps control characters of client-chosen names out of the
// terminal.
func tableSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
