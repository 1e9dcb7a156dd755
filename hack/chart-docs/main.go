// Command chart-docs writes the values table of a Helm chart's README.md from
// the `# --` comments in its values.yaml (the helm-docs convention), between
// the markers
//
//	<!-- values:begin -->
//	<!-- values:end -->
//
// Every leaf value (a scalar, a list or an empty map) must carry a `# --`
// comment unless a map around it does; a commented map is listed as a whole
// and its commented children are listed too. With -check it changes nothing and fails when the README is not
// what it would write (`make verify-chart`).
//
//	go run ./hack/chart-docs [-check] [-chart charts/licenseha]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	yaml "sigs.k8s.io/yaml/goyaml.v3"
)

const (
	beginMarker = "<!-- values:begin -->"
	endMarker   = "<!-- values:end -->"
)

func main() {
	chart := flag.String("chart", "charts/licenseha", "chart folder holding values.yaml and README.md")
	check := flag.Bool("check", false, "fail when README.md is stale instead of writing it")
	flag.Parse()
	if err := run(*chart, *check); err != nil {
		fmt.Fprintln(os.Stderr, "chart-docs:", err)
		os.Exit(1)
	}
}

func run(chart string, check bool) error {
	values, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		return err
	}
	rows, err := Rows(values)
	if err != nil {
		return err
	}
	readmePath := filepath.Join(chart, "README.md")
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		return err
	}
	updated, err := Splice(readme, Table(rows))
	if err != nil {
		return fmt.Errorf("%s: %w", readmePath, err)
	}
	if bytes.Equal(readme, updated) {
		return nil
	}
	if check {
		return fmt.Errorf("%s is stale; run 'go run ./hack/chart-docs' and commit it", readmePath)
	}
	return os.WriteFile(readmePath, updated, 0o644)
}

// Row documents one value.
type Row struct {
	Key, Type, Default, Description string
}

// Rows walks values.yaml in file order and returns a row per documented value.
func Rows(values []byte) ([]Row, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("values.yaml is not a map")
	}
	var rows []Row
	var undocumented []string
	// covered: the enclosing map is documented as a whole, so its children
	// need no comment of their own.
	var walk func(prefix string, m *yaml.Node, covered bool) error
	walk = func(prefix string, m *yaml.Node, covered bool) error {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			desc, ok := description(k.HeadComment)
			nested := v.Kind == yaml.MappingNode && len(v.Content) > 0
			if ok {
				typ, def, err := typeAndDefault(v)
				if err != nil {
					return fmt.Errorf("%s: %w", key, err)
				}
				rows = append(rows, Row{Key: key, Type: typ, Default: def, Description: desc})
			} else if !nested && !covered {
				undocumented = append(undocumented, fmt.Sprintf("%s (line %d)", key, k.Line))
			}
			if nested {
				if err := walk(key+".", v, covered || ok); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk("", doc.Content[0], false); err != nil {
		return nil, err
	}
	if len(undocumented) > 0 {
		return nil, fmt.Errorf("values without a '# --' comment: %s", strings.Join(undocumented, ", "))
	}
	return rows, nil
}

// description returns the text of the last `# --` comment block in a head
// comment (earlier paragraphs are file or section comments).
func description(head string) (string, bool) {
	lines := strings.Split(head, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "# --") {
			start = i
		}
	}
	if start < 0 {
		return "", false
	}
	var parts []string
	for i, l := range lines[start:] {
		l = strings.TrimSpace(l)
		if l == "" {
			break
		}
		l = strings.TrimPrefix(l, "#")
		if i == 0 {
			l = strings.TrimPrefix(strings.TrimSpace(l), "--")
		}
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " "), true
}

func typeAndDefault(v *yaml.Node) (string, string, error) {
	var x any
	if err := v.Decode(&x); err != nil {
		return "", "", err
	}
	typ := "string"
	switch x.(type) {
	case nil:
		typ = "null"
	case bool:
		typ = "bool"
	case int, int64, uint64:
		typ = "int"
	case float64:
		typ = "float"
	case []any:
		typ = "list"
	case map[string]any:
		typ = "object"
	}
	def, err := json.Marshal(x)
	if err != nil {
		return "", "", err
	}
	return typ, string(def), nil
}

// Table renders the rows as a Markdown table.
func Table(rows []Row) string {
	var b strings.Builder
	b.WriteString("| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", r.Key, r.Type, escape(r.Default), escape(r.Description))
	}
	return b.String()
}

func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Splice replaces what lies between the markers with the table.
func Splice(readme []byte, table string) ([]byte, error) {
	s := string(readme)
	b := strings.Index(s, beginMarker)
	e := strings.Index(s, endMarker)
	if b < 0 || e < b {
		return nil, fmt.Errorf("missing %s ... %s markers", beginMarker, endMarker)
	}
	return []byte(s[:b+len(beginMarker)] + "\n" + table + s[e:]), nil
}
