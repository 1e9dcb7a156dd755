package settings

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/licenseha/licenseha/pkg/server"
)

func TestParseYAMLAndJSONGiveTheSameSettings(t *testing.T) {
	y, err := Parse([]byte("access:\n  allowUsers: [\"ops-*\"]\n  allowAddresses: [10.0.0.0/8]\nallowedPrinters: [\"zebra-*\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := Parse([]byte(`{"allowedPrinters":["zebra-*"],"access":{"allowAddresses":["10.0.0.0/8"],"allowUsers":["ops-*"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if server.SettingsHash(y) != server.SettingsHash(j) {
		t.Fatalf("same settings hash differently: %+v vs %+v", y, j)
	}
	if y.Access.AllowUsers[0] != "ops-*" || y.AllowedPrinters[0] != "zebra-*" {
		t.Fatalf("parsed %+v", y)
	}
	other, _ := Parse([]byte(`allowedPrinters: ["zebra-2*"]`))
	if server.SettingsHash(other) == server.SettingsHash(y) {
		t.Fatal("different settings hash equally")
	}
}

func TestParseEmptyIsEmptySettings(t *testing.T) {
	for _, doc := range []string{"", "  \n", "null", "{}"} {
		s, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if server.SettingsHash(s) != server.SettingsHash(server.Settings{}) {
			t.Fatalf("%q: %+v", doc, s)
		}
	}
}

func TestParseNamesTheFieldAtFault(t *testing.T) {
	cases := []struct{ doc, field, msg string }{
		{"access:\n  allowAddresses: [10.0.0.300/8]\n", "settings.access.allowAddresses", "not an address or CIDR"},
		{"allowedPrinters: [\"[\"]\n", "settings.allowedPrinters", "not a valid glob"},
		{"partitions:\n  line-1: {lic-a: 2}\n", "settings.partitions.line-1", "not defined in printerGroups"},
		{"printerGroups: {g: [\"a*\"]}\npartitions:\n  g: {lic-a: -1}\n", "settings.partitions.g.lic-a", "must not be negative"},
		{"reservations: {night: {lic-a: 1}}\n", "settings.reservations.night", "not defined in clientGroups"},
		{"acess: {}\n", "settings", `unknown field "acess"`},
		{"allowedPrinters: zebra\n", "settings.allowedPrinters", "must be a list"},
		{"partitions: {g: {lic-a: many}}\n", "settings.partitions", "must be an integer"},
		{"access: [\n", "settings", "not valid YAML or JSON"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.doc))
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%q: error %v is not a settings error", c.doc, err)
		}
		if e.Field != c.field || !strings.Contains(e.Msg, c.msg) {
			t.Errorf("%q: got field %q msg %q; want field %q msg containing %q", c.doc, e.Field, e.Msg, c.field, c.msg)
		}
	}
}

func TestFromConfigMapKeys(t *testing.T) {
	cm := &corev1.ConfigMap{Data: map[string]string{"other": "x"}}
	if _, err := FromConfigMap(cm); err == nil || !strings.Contains(err.Error(), "settings.yaml") {
		t.Fatalf("no key: %v", err)
	}
	cm.Data = map[string]string{KeyYAML: "{}", KeyJSON: "{}"}
	if _, err := FromConfigMap(cm); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("two keys: %v", err)
	}
	cm.Data = map[string]string{KeyJSON: `{"allowedPrinters":["["]}`}
	_, err := FromConfigMap(cm)
	if err == nil || !strings.Contains(err.Error(), "settings.allowedPrinters") || !strings.Contains(err.Error(), "key settings.json") {
		t.Fatalf("bad value: %v", err)
	}
	cm.Data = map[string]string{KeyYAML: "allowedPrinters: [\"zebra-*\"]"}
	s, err := FromConfigMap(cm)
	if err != nil || len(s.AllowedPrinters) != 1 {
		t.Fatalf("good: %+v %v", s, err)
	}
}

func TestMarshalRoundTrips(t *testing.T) {
	in, err := Parse([]byte("access: {denyUsers: [guest]}\nprinterGroups: {g: [\"a*\"]}\npartitions: {g: {lic-a: 2}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if server.SettingsHash(in) != server.SettingsHash(back) {
		t.Fatalf("round trip changed the settings:\n%s", out)
	}
}
