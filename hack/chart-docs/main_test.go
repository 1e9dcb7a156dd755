package main

import (
	"strings"
	"testing"
)

func TestRows(t *testing.T) {
	values := []byte(`# File comment.

# -- The image.
image:
  # -- Repository;
  # continued.
  repository: x
# -- Covered as a whole.
res:
  requests: {cpu: 1}
# -- A list.
list: []
nested:
  # -- Deep.
  deep: 3
`)
	rows, err := Rows(values)
	if err != nil {
		t.Fatal(err)
	}
	got := Table(rows)
	want := "| `image` | object | `{\"repository\":\"x\"}` | The image. |\n" +
		"| `image.repository` | string | `\"x\"` | Repository; continued. |\n" +
		"| `res` | object | `{\"requests\":{\"cpu\":1}}` | Covered as a whole. |\n" +
		"| `list` | list | `[]` | A list. |\n" +
		"| `nested.deep` | int | `3` | Deep. |\n"
	if !strings.HasSuffix(got, want) {
		t.Errorf("table:\n%s\nwant rows:\n%s", got, want)
	}
}

func TestRowsRejectsUndocumented(t *testing.T) {
	_, err := Rows([]byte("a:\n  b: 1\n# -- ok\nc: 2\n"))
	if err == nil || !strings.Contains(err.Error(), "a.b") {
		t.Fatalf("want an error naming a.b, got %v", err)
	}
}

func TestSplice(t *testing.T) {
	out, err := Splice([]byte("x\n<!-- values:begin -->\nold\n<!-- values:end -->\ny\n"), "T\n")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "x\n<!-- values:begin -->\nT\n<!-- values:end -->\ny\n" {
		t.Errorf("got %q", out)
	}
	if _, err := Splice([]byte("no markers"), "T"); err == nil {
		t.Error("want an error without markers")
	}
}
