package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/licenseha/licenseha/pkg/client"
	"github.com/licenseha/licenseha/pkg/server"
)

// clientFlags are the connection flags of the client subcommands.
type clientFlags struct {
	endpoints []string
	home      string
	members   map[string]string
	clientID  string
	timeout   time.Duration
	output    string
	tokenFile string
	caFile    string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringSliceVar(&f.endpoints, "endpoint", nil, "license server URL, e.g. http://plant-a.printing:5160 (repeatable, in failover order)")
	fl.StringVar(&f.home, "home", "", "home server URL (default: the first --endpoint)")
	fl.StringToStringVar(&f.members, "member", nil, "member name=URL, to follow the servers' active hints (repeatable)")
	fl.StringVar(&f.clientID, "client-id", defaultClientID(), "client id the servers see")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Second, "time allowed for the whole command")
	fl.StringVarP(&f.output, "output", "o", "", "output format: json, or empty for text")
	fl.StringVar(&f.tokenFile, "token-file", "", "file with the client token to send as a bearer token (spec.clientAccess.tokenSecretRef; the first token in the file)")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM file with the CA certificates to verify https endpoints with (default: the system's)")
}

func defaultClientID() string {
	host, _ := os.Hostname()
	if u, err := user.Current(); err == nil {
		return u.Username + "@" + host
	}
	return host
}

// connect returns a client without background work: a CLI call is one-shot.
func (f *clientFlags) connect() (*client.Client, context.Context, context.CancelFunc, error) {
	if len(f.endpoints) == 0 && f.home == "" {
		return nil, nil, nil, errors.New("give at least one --endpoint")
	}
	if f.output != "" && f.output != "json" {
		return nil, nil, nil, fmt.Errorf("--output %q: only json is supported", f.output)
	}
	cfg := client.Config{
		Endpoints: f.endpoints, Home: f.home, Members: f.members, ClientID: f.clientID,
		HeartbeatInterval: -1, HomeCheckInterval: -1,
	}
	if f.tokenFile != "" {
		data, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--token-file: %w", err)
		}
		tokens, err := server.ParseClientTokens(data)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--token-file %s: %w", f.tokenFile, err)
		}
		cfg.Token = tokens[0]
	}
	if f.caFile != "" {
		data, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--ca-file: %w", err)
		}
		cfg.RootCAs = data
	}
	c, err := client.New(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	return c, ctx, func() { cancel(); c.Close() }, nil
}

func newClientCmd(o *Options) *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Check printer seats out and in, as a label printing client does",
	}
	f.add(cmd)
	cmd.AddCommand(newCheckoutCmd(o, f), newReleaseCmd(o, f), newClientStatusCmd(o, f))
	return cmd
}

func newCheckoutCmd(o *Options, f *clientFlags) *cobra.Command {
	var printer, license string
	cmd := &cobra.Command{
		Use:   "checkout",
		Short: "Take a printer seat; it lasts one checkout TTL unless renewed (run checkout again to renew)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runClient(o, f, func(ctx context.Context, c *client.Client) (*client.Checkout, error) {
				return c.Checkout(ctx, printer, license)
			}, func(w io.Writer, co *client.Checkout) error {
				fmt.Fprintf(w, "Checkout %s on licence %s from member %s, expires %s\n",
					co.ID, co.License, co.Member, co.ExpiresAt.Local().Format(time.RFC3339))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&printer, "printer", "", "printer name (required)")
	cmd.Flags().StringVar(&license, "license", "", "licence id or product name (required)")
	_ = cmd.MarkFlagRequired("printer")
	_ = cmd.MarkFlagRequired("license")
	return cmd
}

func newReleaseCmd(o *Options, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "release CHECKOUT-ID",
		Short: "Free a printer seat",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runClient(o, f, func(ctx context.Context, c *client.Client) (map[string]string, error) {
				return map[string]string{"released": args[0]}, c.Release(ctx, args[0])
			}, func(w io.Writer, _ map[string]string) error {
				fmt.Fprintf(w, "Checkout %s released\n", args[0])
				return nil
			})
		},
	}
}

func newClientStatusCmd(o *Options, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show a server's role and licences",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runClient(o, f, func(ctx context.Context, c *client.Client) (*server.Status, error) {
				return c.Status(ctx)
			}, func(w io.Writer, st *server.Status) error {
				fmt.Fprintf(w, "Member %s of %s: %s (epoch %d), active member %q, %d checkouts\n",
					st.Member, st.Group, st.Role, st.Epoch, st.Active, st.Checkouts)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "FILE\tID\tPRODUCT\tEDITION\tSEATS\tVALID\tREASON")
				for _, l := range st.Licenses {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%v\t%s\n", l.File, l.ID, l.Product, l.Edition, l.InUse, l.Printers, l.Valid,
						strings.ReplaceAll(l.Reason, "\t", " "))
				}
				return tw.Flush()
			})
		},
	}
}

// runClient connects with the flags, makes the call and prints its result:
// as JSON with -o json, otherwise with text.
func runClient[T any](o *Options, f *clientFlags, call func(context.Context, *client.Client) (T, error), text func(io.Writer, T) error) error {
	c, ctx, done, err := f.connect()
	if err != nil {
		return err
	}
	defer done()
	v, err := call(ctx, c)
	if err != nil {
		return err
	}
	if f.output == "json" {
		return printJSON(o.Out, v)
	}
	return text(o.Out, v)
}
