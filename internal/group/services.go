package group

import (
	"encoding/json"
	"fmt"
	"regexp"
)

// Service is one more process a member's agent supervises beside the
// server (spec.server.services), as the operator passes it on the agent's
// command line (--service, one flag a service, ServiceFlag's value).
type Service struct {
	Name    string   `json:"name"`
	Command []string `json:"command"`
	// Always: the service runs for the pod's life; otherwise only while
	// the member serves, and it is fenced with the server.
	Always bool `json:"always,omitempty"`
}

// VolumePrefix prefixes the pod volume of each spec.server.volumes[] entry,
// so that no user volume name meets one of the member's own.
const VolumePrefix = "user-"

// LabelMountable is the opt-in label of a PersistentVolumeClaim, ConfigMap
// or Secret that spec.server.volumes may mount (value "true").
const LabelMountable = "licenseha.io/mountable"

var serviceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ServiceFlag is the value of the agent's --service flag for s.
func ServiceFlag(s Service) string {
	data, _ := json.Marshal(s)
	return string(data)
}

// ParseServiceFlag reads a --service flag value.
func ParseServiceFlag(v string) (Service, error) {
	var s Service
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return Service{}, fmt.Errorf("--service: %w", err)
	}
	if !serviceName.MatchString(s.Name) || len(s.Name) > 32 {
		return Service{}, fmt.Errorf("--service: name %q must be a DNS label of at most 32 characters", s.Name)
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return Service{}, fmt.Errorf("--service %s: a command is required", s.Name)
	}
	return s, nil
}
