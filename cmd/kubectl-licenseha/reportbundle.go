package main

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// reportFile is one file of a support report.
type reportFile struct {
	Path  string
	About string
	Data  []byte
}

// reportIssue is a piece of a report that was not collected, and why.
type reportIssue struct {
	What   string `json:"what"`
	Reason string `json:"reason"`
}

// reportBundle is everything a report collected, before redaction.
type reportBundle struct {
	// Root is the folder inside the archive.
	Root      string
	Kind      string
	Namespace string
	Name      string
	CreatedAt time.Time
	Plugin    string
	Files     []reportFile
	// Failed lists what could not be collected (an error).
	Failed []reportIssue
	// Skipped lists what was not collected on purpose or does not exist
	// (no previous container, no Lease yet).
	Skipped []reportIssue
	// Secrets are the Secrets whose values were redacted (read) or could
	// not be read.
	SecretsRead, SecretsUnreadable []string
}

func (b *reportBundle) add(path, about string, data []byte) {
	b.Files = append(b.Files, reportFile{Path: path, About: about, Data: data})
}

func (b *reportBundle) fail(what string, err error) {
	b.Failed = append(b.Failed, reportIssue{What: what, Reason: err.Error()})
}

func (b *reportBundle) skip(what, why string) {
	b.Skipped = append(b.Skipped, reportIssue{What: what, Reason: why})
}

// SecretSummary is what a report says about a Secret: never a value.
type SecretSummary struct {
	Name string `json:"name"`
	// ReferencedBy says why the Secret is in the report: the fields that
	// name it, or "labelled as the group's".
	ReferencedBy []string          `json:"referencedBy"`
	Exists       bool              `json:"exists"`
	Type         string            `json:"type,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Owners       []string          `json:"owners,omitempty"`
	Created      string            `json:"created,omitempty"`
	// Keys are the Secret's keys with the size of each value in bytes.
	Keys  []SecretKeySize `json:"keys,omitempty"`
	Error string          `json:"error,omitempty"`
}

// SecretKeySize is one key of a Secret and the size of its value.
type SecretKeySize struct {
	Key   string `json:"key"`
	Bytes int    `json:"bytes"`
}

// summarizeSecret reduces a Secret to its name, type, labels, owners, keys
// and value sizes. Annotations are left out: kubectl's
// last-applied-configuration annotation holds the whole Secret.
func summarizeSecret(s *corev1.Secret, referencedBy []string) SecretSummary {
	sum := SecretSummary{Name: s.Name, ReferencedBy: referencedBy, Exists: true, Type: string(s.Type), Labels: s.Labels}
	if !s.CreationTimestamp.IsZero() {
		sum.Created = s.CreationTimestamp.UTC().Format(time.RFC3339)
	}
	for _, o := range s.OwnerReferences {
		sum.Owners = append(sum.Owners, o.Kind+"/"+o.Name)
	}
	sizes := map[string]int{}
	for k, v := range s.Data {
		sizes[k] = len(v)
	}
	for k, v := range s.StringData {
		sizes[k] = len(v)
	}
	for k, n := range sizes {
		sum.Keys = append(sum.Keys, SecretKeySize{Key: k, Bytes: n})
	}
	sort.Slice(sum.Keys, func(i, j int) bool { return sum.Keys[i].Key < sum.Keys[j].Key })
	return sum
}

// reportManifest is manifest.json of a report.
type reportManifest struct {
	Kind      string         `json:"kind"`
	Namespace string         `json:"namespace"`
	Name      string         `json:"name"`
	CreatedAt time.Time      `json:"createdAt"`
	Plugin    string         `json:"plugin"`
	Files     []manifestFile `json:"files"`
	Failed    []reportIssue  `json:"failed"`
	Skipped   []reportIssue  `json:"skipped"`
	// RedactedSecrets are the Secrets whose every value was replaced by
	// [REDACTED]; UnreadableSecrets those that could not be read, whose
	// values could therefore not be redacted.
	RedactedSecrets   []string `json:"redactedSecrets"`
	UnreadableSecrets []string `json:"unreadableSecrets,omitempty"`
}

type manifestFile struct {
	Path  string `json:"path"`
	About string `json:"about"`
	Bytes int    `json:"bytes"`
	// Redactions counts the values replaced by [REDACTED] in the file.
	Redactions int `json:"redactions,omitempty"`
}

// writeReportZip writes the report as a zip archive: every file redacted,
// then manifest.json and README.md describing what was collected and what
// was not. Only a failure to write fails it.
func writeReportZip(w io.Writer, b *reportBundle, r *redactor) error {
	zw := zip.NewWriter(w)
	m := reportManifest{Kind: b.Kind, Namespace: b.Namespace, Name: b.Name, CreatedAt: b.CreatedAt.UTC(), Plugin: b.Plugin,
		Failed: b.Failed, Skipped: b.Skipped, RedactedSecrets: b.SecretsRead, UnreadableSecrets: b.SecretsUnreadable}
	if m.Failed == nil {
		m.Failed = []reportIssue{}
	}
	if m.Skipped == nil {
		m.Skipped = []reportIssue{}
	}
	if m.RedactedSecrets == nil {
		m.RedactedSecrets = []string{}
	}
	put := func(path string, data string) error {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: b.Root + "/" + path, Method: zip.Deflate, Modified: b.CreatedAt})
		if err != nil {
			return err
		}
		_, err = io.WriteString(f, data)
		return err
	}
	for _, f := range b.Files {
		text, n := r.redact(string(f.Data))
		if err := put(f.Path, text); err != nil {
			return err
		}
		m.Files = append(m.Files, manifestFile{Path: f.Path, About: f.About, Bytes: len(text), Redactions: n})
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	text, _ := r.redact(string(raw) + "\n")
	if err := put("manifest.json", text); err != nil {
		return err
	}
	readme, _ := r.redact(reportReadme(&m))
	if err := put("README.md", readme); err != nil {
		return err
	}
	return zw.Close()
}

// reportReadme describes a report for whoever opens it.
func reportReadme(m *reportManifest) string {
	var s strings.Builder
	fmt.Fprintf(&s, "# licenseha support report: %s %s/%s\n\n", m.Kind, m.Namespace, m.Name)
	fmt.Fprintf(&s, "Created %s by kubectl-licenseha %s (`kubectl licenseha report`).\n\n", m.CreatedAt.Format(time.RFC3339), m.Plugin)
	s.WriteString("## Redaction\n\n")
	s.WriteString("Secrets appear only in `secrets.yaml`, as their names, types, keys and the size of each value; " +
		"never a value. Every value of every Secret listed there that could be read has been replaced by " +
		"`[REDACTED]` in every file of this report (logs, manifests, ConfigMaps, events), as have private keys, " +
		"licence signatures, bearer tokens and `password:`/`password=` values wherever they appear. " +
		"`manifest.json` counts the replacements per file.\n\n")
	if len(m.RedactedSecrets) > 0 {
		fmt.Fprintf(&s, "Secrets redacted: %s.\n\n", strings.Join(m.RedactedSecrets, ", "))
	}
	if len(m.UnreadableSecrets) > 0 {
		fmt.Fprintf(&s, "**Secrets that could not be read, so their values could not be redacted:** %s.\n\n", strings.Join(m.UnreadableSecrets, ", "))
	}
	s.WriteString("## Collected\n\n| File | Contents |\n|---|---|\n")
	for _, f := range m.Files {
		fmt.Fprintf(&s, "| `%s` | %s |\n", f.Path, f.About)
	}
	s.WriteString("\n## Not collected\n\n")
	if len(m.Failed) == 0 {
		s.WriteString("Nothing failed.\n")
	}
	for _, f := range m.Failed {
		fmt.Fprintf(&s, "- %s: %s\n", f.What, oneLine(f.Reason))
	}
	if len(m.Skipped) > 0 {
		s.WriteString("\nNot present or not applicable:\n\n")
		for _, f := range m.Skipped {
			fmt.Fprintf(&s, "- %s: %s\n", f.What, oneLine(f.Reason))
		}
	}
	return s.String()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
