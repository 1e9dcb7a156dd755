package agent

import "context"

// triadDriver runs the triad's active-role protocol (pkg/election).
type triadDriver struct{ a *Agent }

func newTriadDriver(a *Agent) (roleDriver, error) { return &triadDriver{a: a}, nil }

func (d *triadDriver) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
