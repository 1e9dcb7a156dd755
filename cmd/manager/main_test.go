package main

import (
	"reflect"
	"testing"
)

func TestParseNamespaces(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "", want: nil},
		{in: "team-a", want: []string{"team-a"}},
		{in: " team-a, team-b ,team-a,", want: []string{"team-a", "team-b"}},
		{in: "Team-A", err: true},
		{in: "a/b", err: true},
	} {
		got, err := parseNamespaces(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("parseNamespaces(%q): err = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseNamespaces(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
