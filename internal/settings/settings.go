// Package settings reads the license server settings a group's
// spec.settingsRef ConfigMap holds: the operator validates them before
// handing them to the members, and the kubectl plugin before writing them.
package settings

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/licenseha/licenseha/pkg/server"
)

// Keys of the settings ConfigMap: exactly one holds the settings document,
// YAML or JSON (JSON being YAML too).
const (
	KeyYAML = "settings.yaml"
	KeyJSON = "settings.json"
)

// Error is a problem with a settings document: Field names the settings
// field at fault (or the ConfigMap key), Msg what is wrong and allowed.
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return e.Field + ": " + e.Msg }

// Key returns the key of cm that holds the settings document.
func Key(cm *corev1.ConfigMap) (string, error) {
	var keys []string
	for _, k := range []string{KeyYAML, KeyJSON} {
		if _, ok := cm.Data[k]; ok {
			keys = append(keys, k)
		}
	}
	switch len(keys) {
	case 0:
		return "", &Error{Field: "data", Msg: fmt.Sprintf("holds neither %s nor %s; put the settings document under one of them", KeyYAML, KeyJSON)}
	case 2:
		return "", &Error{Field: "data", Msg: fmt.Sprintf("holds both %s and %s; keep one", KeyYAML, KeyJSON)}
	}
	return keys[0], nil
}

// FromConfigMap reads and validates the settings of cm.
func FromConfigMap(cm *corev1.ConfigMap) (server.Settings, error) {
	key, err := Key(cm)
	if err != nil {
		return server.Settings{}, err
	}
	s, err := Parse([]byte(cm.Data[key]))
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Msg = fmt.Sprintf("%s (key %s)", e.Msg, key)
		}
	}
	return s, err
}

// Parse reads a settings document (YAML or JSON) strictly: unknown fields,
// wrong types and invalid values are refused with an Error naming the
// field, as the license server's admin API would name it ("settings.…").
// An empty document is empty settings.
func Parse(data []byte) (server.Settings, error) {
	var s server.Settings
	if len(bytes.TrimSpace(data)) == 0 {
		return s, nil
	}
	raw, err := yaml.YAMLToJSON(data)
	if err != nil {
		return s, &Error{Field: "settings", Msg: "is not valid YAML or JSON: " + strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")}
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return s, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typeErr):
			field := "settings"
			if typeErr.Field != "" {
				field += "." + typeErr.Field
			}
			return s, &Error{Field: field, Msg: fmt.Sprintf("must be %s, not %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return s, &Error{Field: "settings", Msg: fmt.Sprintf("unknown field %q (the top-level fields are %s)", name, strings.Join(knownFields(), ", "))}
		}
		return s, &Error{Field: "settings", Msg: err.Error()}
	}
	if err := server.ValidateSettings(s); err != nil {
		field := server.FieldOf(err)
		if field == "" {
			field = "settings"
		}
		return s, &Error{Field: field, Msg: strings.TrimPrefix(err.Error(), field+": ")}
	}
	return s, nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "slice":
		return "a list"
	case "map", "struct":
		return "a mapping"
	case "string":
		return "a string"
	case "int", "int64":
		return "an integer"
	}
	return "a " + goKind
}

// knownFields lists the top-level fields of the settings document.
func knownFields() []string {
	names := []string{"access", "printerGroups", "partitions", "allowedPrinters", "clientGroups", "reservations"}
	sort.Strings(names)
	return names
}

// Marshal writes settings as a YAML document, the form `settings get` shows
// and `settings set` stores.
func Marshal(s server.Settings) ([]byte, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(raw)
}
