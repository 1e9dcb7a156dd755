package main

import (
	"context"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// LicenceRow is one licence of a group in `licenses` output.
type LicenceRow struct {
	// Server is the pair's side holding the licence (main or backup); for
	// a triad "all": its members share one licence Secret.
	Server   string     `json:"server"`
	ID       string     `json:"id"`
	Product  string     `json:"product,omitempty"`
	Edition  string     `json:"edition,omitempty"`
	Printers int32      `json:"printers"`
	Expires  *time.Time `json:"expires,omitempty"`
	Valid    bool       `json:"valid"`
	// MappedTo is, for a pair, the licence of the other side that
	// spec.licenseMappings maps this one to; "" when unmapped.
	MappedTo string `json:"mappedTo,omitempty"`
	Message  string `json:"message,omitempty"`
}

// licenceColumns are the columns of the table and the CSV header.
var licenceColumns = []string{"SERVER", "ID", "PRODUCT", "EDITION", "PRINTERS", "EXPIRES", "VALID", "MAPPED-TO"}

func newLicensesCmd(o *Options) *cobra.Command {
	var out *outputFlags
	cmd := &cobra.Command{
		Use:   "licenses GROUP",
		Short: "List a group's licences (id, product, edition, printers, expiry) per server, to write licenseMappings",
		Long: `Lists the licences the operator verified for a group, as its status reports them: for a triad the
licences all three members share (server "all"), for a backup pair each side's own, with the licence of the
other side that spec.licenseMappings maps it to. Unmapped licences cannot fail over: map each main licence to
a backup licence of the same product, preferably with at least as many printers.

No Secret is read: the list comes from the group's status (status.licenses, status.main.licenses,
status.backup.licenses), so it shows what the operator last verified.`,
		Example: `  kubectl licenseha licenses plant-b
  kubectl licenseha licenses plant-b -o csv > plant-b-licences.csv
  kubectl licenseha licenses plant-b -o json
  kubectl licenseha licenses plant-b -o jsonpath='{.items[?(@.server=="main")].id}'`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(o, true, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			printer, output, err := out.rowsPrinter("licences")
			if err != nil {
				return err
			}
			rows, err := o.licenceRows(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			switch output {
			case "", "table", "wide", "csv":
				return renderLicences(o.Out, output, rows)
			}
			return printRows(o.Out, out, printer, rows)
		},
	}
	out = newOutputFlags(cmd, "table", []string{"table", "csv"},
		"output format: table, wide (the same table), csv, json, yaml, jsonpath=..., go-template=..., custom-columns=... (templates see a v1 List of the rows)")
	return cmd
}

// licenceRows reads the group and lists its licences.
func (o *Options) licenceRows(ctx context.Context, name string) ([]LicenceRow, error) {
	_, g, err := o.kubeGroup(ctx, name)
	if err != nil {
		return nil, err
	}
	return g.licences(), nil
}

// triadLicences lists a triad's shared licences.
func triadLicences(t *licensehav1.LicenseTriad) []LicenceRow {
	rows := []LicenceRow{}
	for _, l := range t.Status.Licenses {
		rows = append(rows, licenceRow("all", l, ""))
	}
	return rows
}

// pairLicences lists both sides' licences with their mapping partners.
func pairLicences(p *licensehav1.LicenseBackupPair) []LicenceRow {
	toBackup, toMain := map[string]string{}, map[string]string{}
	for _, m := range p.Spec.LicenseMappings {
		toBackup[m.Main], toMain[m.Backup] = m.Backup, m.Main
	}
	rows := []LicenceRow{}
	for _, l := range p.Status.Main.Licenses {
		rows = append(rows, licenceRow(string(licensehav1.SideMain), l, toBackup[l.ID]))
	}
	for _, l := range p.Status.Backup.Licenses {
		rows = append(rows, licenceRow(string(licensehav1.SideBackup), l, toMain[l.ID]))
	}
	return rows
}

func licenceRow(server string, l licensehav1.LicenseStatus, mapped string) LicenceRow {
	r := LicenceRow{Server: server, ID: l.ID, Product: l.Product, Edition: l.Edition, Printers: l.Printers,
		Valid: l.Valid, MappedTo: mapped, Message: l.Message}
	if l.Expires != nil {
		t := l.Expires.UTC()
		r.Expires = &t
	}
	return r
}

// cells are the row's values in licenceColumns order.
func (r LicenceRow) cells() []string {
	expires := ""
	if r.Expires != nil {
		expires = r.Expires.Format(time.RFC3339)
	}
	return []string{r.Server, r.ID, r.Product, r.Edition, strconv.Itoa(int(r.Printers)), expires, strconv.FormatBool(r.Valid), r.MappedTo}
}

// renderLicences writes the rows as a table or CSV.
func renderLicences(w io.Writer, format string, rows []LicenceRow) error {
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = r.cells()
	}
	return renderCells(w, format, licenceColumns, cells, "No licences reported in the group's status.")
}
