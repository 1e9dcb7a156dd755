package election

import (
	"testing"
	"time"
)

func TestGrantHoldCoversTheGranteesDeadlineUnderSkew(t *testing.T) {
	c := Config{}.WithDefaults()
	// The grantee's PeerTimeout on a clock 5% slow, plus FenceDelay, seen
	// by a voter whose clock runs 5% fast.
	pt, fd := 2*time.Second, 100*time.Millisecond
	want := time.Duration((float64(pt)/0.95 + float64(fd)) * 1.05)
	if got := c.GrantHold(); got < want || got > want+time.Microsecond {
		t.Fatalf("GrantHold = %v, want %v", got, want)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Self: "a", Primary: "a", Secondary: "b", Tertiary: "c"}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"duplicate member":  func(c *Config) { c.Tertiary = "b" },
		"self not named":    func(c *Config) { c.Self = "" },
		"slow heartbeats":   func(c *Config) { c.HeartbeatInterval = c.PeerTimeout },
		"drift too large":   func(c *Config) { c.MaxClockDrift = 0.5 },
		"unknown failback":  func(c *Config) { c.Failback = "Sometimes" },
		"negative fence":    func(c *Config) { c.FenceDelay = -1 },
		"negative failback": func(c *Config) { c.FailbackDelay = -time.Second },
	} {
		c := ok
		mutate(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
