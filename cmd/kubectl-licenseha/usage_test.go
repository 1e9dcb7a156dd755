package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/licenseha/licenseha/pkg/server"
)

func usageFixture() []usageSource {
	t1 := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
	t2 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	return []usageSource{
		{server: "main", rows: []server.UsageRecord{
			{License: "LIC-A", Printer: "zebra-1", Period: "2026-11", Checkouts: 2, Jobs: 10, Labels: 100, LastUse: t1},
			{License: "LIC-A", Printer: "zebra-2", Period: "2026-11", Checkouts: 1, Jobs: 1, Labels: 5, LastUse: t1},
			{License: "LIC-A", Printer: "zebra-1", Period: "2026-12", Checkouts: 4, Jobs: 4, Labels: 40, LastUse: t2},
			{License: "LIC-B", Printer: "=cmd|x", Period: "2026-12", Checkouts: 1, Jobs: 1, Labels: 1<<63 - 1, LastUse: t2},
		}},
		{server: "backup", rows: []server.UsageRecord{
			{License: "LIC-A", Printer: "zebra-1", Period: "2026-12", Checkouts: 3, Jobs: 3, Labels: 30, LastUse: t2},
			{License: "LIC-B", Printer: "*", Period: "2026-12", Checkouts: 1, Jobs: 1, Labels: 9, LastUse: t2},
		}},
	}
}

func TestSummarizeUsageByLicence(t *testing.T) {
	dims, err := parseDims("license")
	if err != nil {
		t.Fatal(err)
	}
	rows := summarizeUsage(usageFixture(), dims, "", "")
	if len(rows) != 2 {
		t.Fatalf("rows %+v", rows)
	}
	a, b := rows[0], rows[1]
	if a.License != "LIC-A" || a.Checkouts != 10 || a.Jobs != 18 || a.Labels != 175 || a.Server != "" || a.Printer != "" {
		t.Fatalf("LIC-A %+v", a)
	}
	if b.License != "LIC-B" || b.Labels != 1<<63-1 {
		t.Fatalf("LIC-B must saturate, got %+v", b)
	}
	if !a.LastUse.Equal(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("last use %v", a.LastUse)
	}
}

func TestSummarizeUsagePerServerAndPeriodFilters(t *testing.T) {
	dims, _ := parseDims("server,license")
	rows := summarizeUsage(usageFixture(), dims, "2026-12", "LIC-A")
	if len(rows) != 2 || rows[0].Server != "backup" || rows[0].Checkouts != 3 || rows[1].Server != "main" || rows[1].Checkouts != 4 {
		t.Fatalf("rows %+v", rows)
	}
}

func TestParseDimsRefusesUnknownColumns(t *testing.T) {
	for _, by := range []string{"licence,color", "client,printer"} {
		if _, err := parseDims(by); err == nil || !strings.Contains(err.Error(), "--by") {
			t.Errorf("%q: %v", by, err)
		}
	}
	if d, err := parseDims("Licence, server"); err != nil || !d[dimLicense] || !d[dimServer] {
		t.Fatalf("%v %v", d, err)
	}
}

func TestRenderUsageFormats(t *testing.T) {
	dims, _ := parseDims("period,license,printer")
	rows := summarizeUsage(usageFixture(), dims, "", "")

	var tab bytes.Buffer
	if err := renderUsage(&tab, "table", dims, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(tab.String()), "\n")
	if !strings.HasPrefix(lines[0], "PERIOD") || !strings.Contains(lines[0], "CHECKOUTS") || len(lines) != 1+len(rows) {
		t.Fatalf("table:\n%s", tab.String())
	}
	if !strings.Contains(lines[1], "2026-11") || !strings.Contains(lines[1], "zebra-1") || !strings.Contains(lines[1], "100") {
		t.Fatalf("first row: %q", lines[1])
	}

	var csvOut bytes.Buffer
	if err := renderUsage(&csvOut, "csv", dims, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(csvOut.String(), "period,license,printer,checkouts,jobs,labels,lastUse\n") {
		t.Fatalf("csv:\n%s", csvOut.String())
	}
	if !strings.Contains(csvOut.String(), "'=cmd|x") {
		t.Fatalf("a printer name starting with = must not reach a spreadsheet as a formula:\n%s", csvOut.String())
	}

	var js bytes.Buffer
	if err := renderUsage(&js, "json", dims, rows); err != nil {
		t.Fatal(err)
	}
	var back []UsageRow
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back) != len(rows) || back[0].Labels != 100 {
		t.Fatalf("json %v: %s", err, js.String())
	}

	var empty bytes.Buffer
	_ = renderUsage(&empty, "json", dims, nil)
	if strings.TrimSpace(empty.String()) != "[]" {
		t.Fatalf("empty json: %q", empty.String())
	}
}

func TestClientRowsCountSeatsHeldNow(t *testing.T) {
	dims, _ := parseDims("client,license")
	rows := clientRows([]usageSourceCheckouts{{server: "a", checkouts: []server.CheckoutRecord{
		{Client: "ann", License: "LIC-A"}, {Client: "ann", License: "LIC-A"}, {Client: "bob", License: "LIC-A"}, {Client: "ann", License: "LIC-B"},
	}}}, dims, "")
	if len(rows) != 3 || rows[0].Client != "ann" || rows[0].License != "LIC-A" || rows[0].Checkouts != 2 {
		t.Fatalf("%+v", rows)
	}
}

func TestLineDiff(t *testing.T) {
	if d := lineDiff("a\nb\n", "a\nb\n"); d != nil {
		t.Fatalf("equal: %v", d)
	}
	d := strings.Join(lineDiff("a\nb\nc\n", "a\nx\nc\n"), "|")
	if d != " a|-b|+x| c" && d != " a|+x|-b| c" {
		t.Fatalf("diff %q", d)
	}
}
