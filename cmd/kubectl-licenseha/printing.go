package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/util/jsonpath"
)

// outputFlags are -o and its companions (--template, ...) through
// cli-runtime's PrintFlags, plus the formats the commands print
// themselves: their readable default, "wide" and "custom-columns=".
type outputFlags struct {
	print *genericclioptions.PrintFlags
	// own are the formats the command renders itself besides wide and
	// custom-columns (e.g. "table", "csv").
	own []string
}

func newOutputFlags(cmd *cobra.Command, def string, own []string, usage string) *outputFlags {
	f := &outputFlags{print: genericclioptions.NewPrintFlags("").WithDefaultOutput(def), own: own}
	f.print.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = usage
	return f
}

func (f *outputFlags) format() string { return *f.print.OutputFormat }

// customColumns returns the spec of -o custom-columns=SPEC, or "".
func (f *outputFlags) customColumns() string {
	if spec, ok := strings.CutPrefix(f.format(), "custom-columns="); ok {
		return spec
	}
	return ""
}

// printer returns cli-runtime's printer for -o, nil for a format the
// command renders itself (its default, wide, custom-columns and own); an
// unknown format is an error listing them all.
func (f *outputFlags) printer() (printers.ResourcePrinter, error) {
	format := f.format()
	if format == "" || format == "wide" || f.customColumns() != "" {
		return nil, nil
	}
	for _, o := range f.own {
		if format == o {
			return nil, nil
		}
	}
	if format == "custom-columns" {
		return nil, fmt.Errorf("--output custom-columns: give the columns, e.g. -o custom-columns=NAME:.name,ACTIVE:.active")
	}
	p, err := f.print.ToPrinter()
	if genericclioptions.IsNoCompatiblePrinterError(err) {
		allowed := append(append([]string{}, f.own...), "wide", "custom-columns=")
		allowed = append(allowed, f.print.AllowedFormats()...)
		return nil, fmt.Errorf("--output %q: use one of %s", format, strings.Join(allowed, ", "))
	}
	return p, err
}

// rowsPrinter is printer for a command that prints rows (what), not
// objects, with the format of -o; -o name is refused.
func (f *outputFlags) rowsPrinter(what string) (printers.ResourcePrinter, string, error) {
	p, err := f.printer()
	if err != nil {
		return nil, "", err
	}
	if f.format() == "name" {
		return nil, "", fmt.Errorf("--output name: %s are not objects with names; use -o jsonpath or -o custom-columns", what)
	}
	return p, f.format(), nil
}

// toUnstructured turns a value into an object the printers take, with
// the given apiVersion, kind and metadata (name, namespace) added so that
// -o name and the templates find them where kubectl puts them.
func toUnstructured(v any, apiVersion, kind, ns, name string) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(v)
	if err != nil {
		return nil, err
	}
	if apiVersion != "" {
		m["apiVersion"] = apiVersion
	}
	if kind != "" {
		m["kind"] = kind
	}
	if name != "" {
		meta := map[string]any{"name": name}
		if ns != "" {
			meta["namespace"] = ns
		}
		m["metadata"] = meta
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// listOf wraps items in a v1 List, as kubectl prints several objects.
func listOf(items []unstructured.Unstructured) *unstructured.UnstructuredList {
	return &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "List"}, Items: items}
}

// printCustomColumns prints -o custom-columns=HEADER:JSONPATH,... for an
// object or each item of a list; a path that finds nothing shows <none>.
func printCustomColumns(w io.Writer, spec string, obj runtime.Object) error {
	type column struct {
		header string
		jp     *jsonpath.JSONPath
	}
	var cols []column
	for _, part := range strings.Split(spec, ",") {
		header, expr, ok := strings.Cut(part, ":")
		if !ok || header == "" || expr == "" {
			return fmt.Errorf("-o custom-columns: %q is not HEADER:JSONPATH", part)
		}
		if !strings.HasPrefix(expr, "{") {
			if !strings.HasPrefix(expr, ".") {
				expr = "." + expr
			}
			expr = "{" + expr + "}"
		}
		jp := jsonpath.New(header).AllowMissingKeys(true)
		if err := jp.Parse(expr); err != nil {
			return fmt.Errorf("-o custom-columns: column %s: %w", header, err)
		}
		cols = append(cols, column{header: header, jp: jp})
	}
	var items []map[string]any
	switch o := obj.(type) {
	case *unstructured.UnstructuredList:
		for i := range o.Items {
			items = append(items, o.Items[i].Object)
		}
	case *unstructured.Unstructured:
		items = []map[string]any{o.Object}
	default:
		return fmt.Errorf("-o custom-columns: cannot print %T", obj)
	}
	tw := printers.GetNewTabWriter(w)
	headers := make([]string, len(cols))
	for i, c := range cols {
		headers[i] = c.header
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, item := range items {
		cells := make([]string, len(cols))
		for i, c := range cols {
			results, err := c.jp.FindResults(item)
			if err != nil {
				return fmt.Errorf("-o custom-columns: column %s: %w", c.header, err)
			}
			var vals []string
			for _, set := range results {
				for _, v := range set {
					vals = append(vals, fmt.Sprint(v.Interface()))
				}
			}
			cells[i] = "<none>"
			if len(vals) > 0 {
				cells[i] = tableSafe(strings.Join(vals, ","))
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// indentWriter indents every line written through it.
type indentWriter struct {
	w       io.Writer
	indent  string
	midLine bool
}

func (iw *indentWriter) Write(p []byte) (int, error) {
	var out []byte
	for _, c := range p {
		if !iw.midLine && c != '\n' {
			out = append(out, iw.indent...)
		}
		out = append(out, c)
		iw.midLine = c != '\n'
	}
	if _, err := iw.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// printTable prints a metav1.Table through cli-runtime's table printer,
// indented by two spaces with two spaces between columns (the layout of
// `status`); wide shows the columns of priority 1 too.
func printTable(w io.Writer, t *metav1.Table, wide bool) error {
	return printTableIndent(w, t, wide, "  ")
}

// printTableIndent is printTable with another indentation.
func printTableIndent(w io.Writer, t *metav1.Table, wide bool, indent string) error {
	var out io.Writer = w
	if indent != "" {
		out = &indentWriter{w: w, indent: indent}
	}
	tw := printers.GetNewTabWriter(out)
	tw.Init(out, 0, 4, 2, ' ', 0)
	if err := printers.NewTablePrinter(printers.PrintOptions{Wide: wide}).PrintObj(t, tw); err != nil {
		return err
	}
	return tw.Flush()
}

// col is a table column; wide columns show with -o wide only.
func col(name string, wide bool) metav1.TableColumnDefinition {
	c := metav1.TableColumnDefinition{Name: name, Type: "string"}
	if wide {
		c.Priority = 1
	}
	return c
}

func row(cells ...any) metav1.TableRow { return metav1.TableRow{Cells: cells} }

// renderCells writes rows of cells under the columns cols: as CSV (format
// "csv"; cells kept from being read as formulas), or as a table (wide is
// the same table; cells kept free of control characters, "-" for empty
// ones), or the line none when there are no rows.
func renderCells(w io.Writer, format string, cols []string, rows [][]string, none string) error {
	if format == "csv" {
		cw := csv.NewWriter(w)
		_ = cw.Write(cols)
		for _, r := range rows {
			rec := make([]string, len(r))
			for i, c := range r {
				rec[i] = csvSafe(c)
			}
			_ = cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, none)
		return err
	}
	t := &metav1.Table{}
	for _, c := range cols {
		t.ColumnDefinitions = append(t.ColumnDefinitions, col(c, false))
	}
	for _, r := range rows {
		cells := make([]any, len(r))
		for i, c := range r {
			cells[i] = orDash(tableSafe(c))
		}
		t.Rows = append(t.Rows, row(cells...))
	}
	return printTableIndent(w, t, format == "wide", "")
}

// printRows prints rows through cli-runtime's printer for -o: json, yaml
// and kyaml as a plain array of the rows, the templates and custom columns
// over a v1 List of them.
func printRows[T any](w io.Writer, out *outputFlags, printer printers.ResourcePrinter, rows []T) error {
	if rows == nil {
		rows = []T{}
	}
	if format := out.format(); format == "json" || format == "yaml" || format == "kyaml" {
		raw, err := json.Marshal(rows)
		if err != nil {
			return err
		}
		return printer.PrintObj(&runtime.Unknown{Raw: raw, ContentType: runtime.ContentTypeJSON}, w)
	}
	items := make([]unstructured.Unstructured, 0, len(rows))
	for i := range rows {
		u, err := toUnstructured(&rows[i], "", "", "", "")
		if err != nil {
			return err
		}
		items = append(items, *u)
	}
	if spec := out.customColumns(); spec != "" {
		return printCustomColumns(w, spec, listOf(items))
	}
	return printer.PrintObj(listOf(items), w)
}
