package server

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidateSettingsNamesTheField(t *testing.T) {
	err := ValidateSettings(Settings{Access: AccessRules{DenyAddresses: []string{"not-an-ip"}}})
	if err == nil || FieldOf(err) != "settings.access.denyAddresses" || !strings.Contains(err.Error(), "not an address or CIDR") {
		t.Fatalf("err %v, field %q", err, FieldOf(err))
	}
	big := Settings{AllowedPrinters: []string{strings.Repeat("p", SettingsBudgetBytes)}}
	if err := ValidateSettings(big); err == nil || FieldOf(err) != "settings" {
		t.Fatalf("over budget: %v", err)
	}
	if err := ValidateSettings(Settings{AllowedPrinters: []string{"zebra-*"}}); err != nil {
		t.Fatal(err)
	}
}

func TestSettingsHashSurvivesTheAdminAPIRoundTrip(t *testing.T) {
	s := Settings{
		Access:        AccessRules{AllowUsers: []string{"ops-*"}},
		PrinterGroups: map[string][]string{"b": {"b*"}, "a": {"a*"}},
		Partitions:    map[string]map[string]int{"a": {"L2": 1, "L1": 2}},
		ClientGroups:  map[string]ClientGroup{"night": {Clients: []string{"n-*"}}},
	}
	raw, _ := json.Marshal(s)
	var back Settings
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if SettingsHash(s) != SettingsHash(back) {
		t.Fatal("a JSON round trip changed the hash")
	}
	if SettingsHash(Settings{}) != SettingsHash(Settings{PrinterGroups: map[string][]string{}, AllowedPrinters: []string{}}) {
		t.Fatal("empty and absent lists must hash the same")
	}
	back.Partitions["a"]["L1"] = 3
	if SettingsHash(s) == SettingsHash(back) {
		t.Fatal("different settings hash the same")
	}
}
