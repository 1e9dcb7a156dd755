package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

func licencePairFixture() *licensehav1.LicenseBackupPair {
	exp := metav1.NewTime(time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC))
	p := &licensehav1.LicenseBackupPair{ObjectMeta: metav1.ObjectMeta{Name: "plant-b", Namespace: "printing"}}
	p.Spec.LicenseMappings = []licensehav1.LicenseMapping{{Main: "LIC-0001", Backup: "LIC-0101"}}
	p.Status.Main.Licenses = []licensehav1.LicenseStatus{
		{ID: "LIC-0001", Product: "LabelDesigner", Edition: "Enterprise", Printers: 50, Expires: &exp, Valid: true},
		{ID: "LIC-0002", Product: "=Formula", Edition: "Professional", Printers: 5, Valid: true},
	}
	p.Status.Backup.Licenses = []licensehav1.LicenseStatus{
		{ID: "LIC-0101", Product: "LabelDesigner", Edition: "Enterprise", Printers: 20, Valid: true},
	}
	return p
}

func TestPairLicencesShowMappings(t *testing.T) {
	rows := pairLicences(licencePairFixture())
	if len(rows) != 3 {
		t.Fatalf("rows %+v", rows)
	}
	if r := rows[0]; r.Server != "main" || r.ID != "LIC-0001" || r.MappedTo != "LIC-0101" || r.Printers != 50 || r.Expires == nil {
		t.Fatalf("main LIC-0001 %+v", r)
	}
	if r := rows[1]; r.Server != "main" || r.ID != "LIC-0002" || r.MappedTo != "" {
		t.Fatalf("unmapped main licence %+v", r)
	}
	if r := rows[2]; r.Server != "backup" || r.ID != "LIC-0101" || r.MappedTo != "LIC-0001" {
		t.Fatalf("backup LIC-0101 %+v", r)
	}
}

func TestTriadLicencesAreShared(t *testing.T) {
	tr := &licensehav1.LicenseTriad{}
	tr.Status.Licenses = []licensehav1.LicenseStatus{{ID: "LIC-9", Edition: "Enterprise", Printers: 3, Valid: true}}
	rows := triadLicences(tr)
	if len(rows) != 1 || rows[0].Server != "all" || rows[0].ID != "LIC-9" {
		t.Fatalf("rows %+v", rows)
	}
	if rows := triadLicences(&licensehav1.LicenseTriad{}); rows == nil || len(rows) != 0 {
		t.Fatalf("no licences must be an empty list, got %#v", rows)
	}
}

func TestRenderLicencesCSVAndTable(t *testing.T) {
	rows := pairLicences(licencePairFixture())
	var buf bytes.Buffer
	if err := renderLicences(&buf, "csv", rows); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != "SERVER,ID,PRODUCT,EDITION,PRINTERS,EXPIRES,VALID,MAPPED-TO" {
		t.Fatalf("header %v", recs[0])
	}
	if got := strings.Join(recs[1], ","); got != "main,LIC-0001,LabelDesigner,Enterprise,50,2027-06-30T00:00:00Z,true,LIC-0101" {
		t.Fatalf("row 1 %q", got)
	}
	if recs[2][2] != "'=Formula" {
		t.Fatalf("a product starting with = must not be a spreadsheet formula: %q", recs[2][2])
	}

	buf.Reset()
	if err := renderLicences(&buf, "table", rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "SERVER") || !strings.Contains(lines[3], "LIC-0101") || !strings.Contains(lines[2], "-") {
		t.Fatalf("table:\n%s", buf.String())
	}
}

func TestEnvLicenses(t *testing.T) {
	startEnv(t)
	ns := newNS(t)
	ctx := context.Background()
	p := licencePairFixture()
	p.Namespace = ns
	p.Spec.Main.LicenseSecretRef.Name, p.Spec.Backup.LicenseSecretRef.Name = "main", "backup"
	status := p.Status
	if err := kc.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Status = status
	if err := kc.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}

	out, err := kubectl(t, ns, "licenses", "plant-b", "-o", "json")
	if err != nil {
		t.Fatalf("licenses -o json: %v\n%s", err, out)
	}
	var rows []LicenceRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(rows) != 3 || rows[0].MappedTo != "LIC-0101" || rows[2].Server != "backup" {
		t.Fatalf("rows %+v", rows)
	}

	out, err = kubectl(t, ns, "licenses", "plant-b", "-o", "csv")
	if err != nil || !strings.Contains(out, "backup,LIC-0101,LabelDesigner,Enterprise,20,,true,LIC-0001") {
		t.Fatalf("licenses -o csv: %v\n%s", err, out)
	}

	out, err = kubectl(t, ns, "licenses", "plant-b", "-o", "jsonpath={.items[?(@.server==\"main\")].id}")
	if err != nil || strings.TrimSpace(out) != "LIC-0001 LIC-0002" {
		t.Fatalf("licenses -o jsonpath: %v\n%q", err, out)
	}

	createTriad(t, ns, "plant-a")
	out, err = kubectl(t, ns, "licenses", "plant-a")
	if err != nil || !strings.Contains(out, "LIC-0001") || !strings.Contains(out, "all") {
		t.Fatalf("licenses of a triad: %v\n%s", err, out)
	}

	if out, err := kubectl(t, ns, "licenses", "nothing"); err == nil {
		t.Fatalf("an unknown group must fail, got\n%s", out)
	}
}
