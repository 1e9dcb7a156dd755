// Command license-server is the licenseha reference license server.
//
// It serves the client API on --listen (over HTTPS with --tls-cert-file and
// --tls-key-file, and only for bearer tokens from --client-token-file when
// set) and the admin API, for the member's supervisor, on --admin-listen. Every flag can also be set through an
// environment variable: LICENSEHA_ followed by the flag name in upper case
// with dashes as underscores (for example LICENSEHA_GROUP). See
// docs/license-server.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/licenseha/licenseha/internal/version"
	"github.com/licenseha/licenseha/pkg/licensing"
	"github.com/licenseha/licenseha/pkg/server"
)

type config struct {
	listen, adminListen, adminTokenFile string
	clientTokenFile                     string
	tlsCertFile, tlsKeyFile             string
	clientAuthReloadInterval            time.Duration
	dataDir, licenseDir, trustedKeys    string
	group, member, role                 string
	checkoutTTL, licenseCheckInterval   time.Duration
	maxCheckoutsPerClient               int
	maxCheckoutsPerAddress              int
	usageRowsPerPeriod, usageMonths     int
	maxBodyBytes                        int64
	readTimeout, writeTimeout           time.Duration
	idleTimeout, readHeaderTimeout      time.Duration
	logFormat                           string
	// showVersion: print the version and exit (--version).
	showVersion bool
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := pflag.NewFlagSet("license-server", pflag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", ":5160", "address of the client API")
	fs.StringVar(&c.adminListen, "admin-listen", "127.0.0.1:5161", "address of the admin API (keep it on loopback in a pod)")
	fs.StringVar(&c.adminTokenFile, "admin-token-file", "", "file holding the admin API bearer token (required)")
	fs.StringVar(&c.clientTokenFile, "client-token-file", "", "file holding the client API bearer tokens, one per line; when set, every client request but GET /healthz and /readyz needs one")
	fs.StringVar(&c.tlsCertFile, "tls-cert-file", "", "PEM certificate (chain) of the client API; with --tls-key-file the client API speaks HTTPS only")
	fs.StringVar(&c.tlsKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.DurationVar(&c.clientAuthReloadInterval, "client-auth-reload-interval", 10*time.Second, "how often the client token and TLS files are re-read (also on SIGHUP)")
	fs.StringVar(&c.dataDir, "data-dir", "/var/lib/licenseha", "folder of the durable store")
	fs.StringVar(&c.licenseDir, "license-dir", "/etc/licenseha/licenses", "folder of the licence files (*.lic)")
	fs.StringVar(&c.trustedKeys, "trusted-keys", "/etc/licenseha/trusted-keys.pem", "PEM file with the public keys licences must be signed with")
	fs.StringVar(&c.group, "group", "", "redundancy group, <namespace>/<name> (required)")
	fs.StringVar(&c.member, "member", "", "this member's name (default: the host name)")
	fs.StringVar(&c.role, "role", string(server.RoleActive), "initial role: active, standby or witness")
	fs.DurationVar(&c.checkoutTTL, "checkout-ttl", 30*time.Second, "how long a checkout lives without a heartbeat")
	fs.DurationVar(&c.licenseCheckInterval, "license-check-interval", 10*time.Second, "how often the licence folder is re-read")
	fs.IntVar(&c.maxCheckoutsPerClient, "max-checkouts-per-client", 1000, "checkouts one client id may hold (0: no limit)")
	fs.IntVar(&c.maxCheckoutsPerAddress, "max-checkouts-per-address", 0,
		"checkouts created from one source address (IPv6: one /64) may hold, whatever their client ids (0: as --max-checkouts-per-client; -1: no limit)")
	fs.IntVar(&c.usageRowsPerPeriod, "usage-rows-per-period", server.DefaultUsageRowsPerPeriod,
		"usage statistics rows of named printers per month; further printers are counted under printer \"*\"")
	fs.IntVar(&c.usageMonths, "usage-months", server.DefaultUsageMonths, "months of usage statistics kept, the current one included")
	fs.Int64Var(&c.maxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest client API request body")
	fs.DurationVar(&c.readTimeout, "read-timeout", 10*time.Second, "time to read a whole request")
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", 5*time.Second, "time to read request headers")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 10*time.Second, "time to write a response")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive connection stays open")
	fs.StringVar(&c.logFormat, "log-format", "json", "log format: json or text")
	fs.BoolVar(&c.showVersion, "version", false, "print the version and revision and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.showVersion {
		return c, nil
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return nil, err
	}
	if c.group == "" {
		return nil, errors.New("--group is required")
	}
	if c.adminTokenFile == "" {
		return nil, errors.New("--admin-token-file is required")
	}
	if (c.tlsCertFile == "") != (c.tlsKeyFile == "") {
		return nil, errors.New("--tls-cert-file and --tls-key-file go together: set both or neither")
	}
	if c.clientAuthReloadInterval <= 0 {
		return nil, errors.New("--client-auth-reload-interval must be positive")
	}
	if c.usageRowsPerPeriod < 1 || c.usageMonths < 1 {
		return nil, fmt.Errorf("--usage-rows-per-period and --usage-months must be at least 1, got %d and %d",
			c.usageRowsPerPeriod, c.usageMonths)
	}
	if c.member == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("--member not set and no host name: %w", err)
		}
		c.member = h
	}
	return c, nil
}

// applyEnv sets every flag not given on the command line from its
// LICENSEHA_* environment variable, when present.
func applyEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		// --version is no setting: LICENSEHA_VERSION (which a vendor's
		// environment may well hold) must not stop the server.
		if f.Changed || err != nil || f.Name == "version" {
			return
		}
		name := "LICENSEHA_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(name); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("environment variable %s: %w", name, e)
			}
		}
	})
	return err
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, pflag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "license-server:", err)
		os.Exit(2)
	}
	if cfg.showVersion {
		version.Print(os.Stdout, "license-server")
		return
	}
	var handler slog.Handler = slog.NewJSONHandler(os.Stderr, nil)
	if cfg.logFormat == "text" {
		handler = slog.NewTextHandler(os.Stderr, nil)
	}
	log := slog.New(handler).With("member", cfg.member, "group", cfg.group)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("License server failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg *config, log *slog.Logger) error {
	token, err := os.ReadFile(cfg.adminTokenFile)
	if err != nil {
		return fmt.Errorf("reading the admin token: %w", err)
	}
	token = []byte(strings.TrimSpace(string(token)))
	if len(token) == 0 {
		return fmt.Errorf("admin token file %s is empty", cfg.adminTokenFile)
	}
	keyData, err := os.ReadFile(cfg.trustedKeys)
	if err != nil {
		return fmt.Errorf("reading trusted keys: %w", err)
	}
	keys, err := licensing.ParseTrustedKeys(keyData)
	if err != nil {
		return fmt.Errorf("trusted keys %s: %w", cfg.trustedKeys, err)
	}
	srv, err := server.New(server.Options{
		Group: cfg.group, Member: cfg.member, Role: server.Role(cfg.role),
		DataDir: cfg.dataDir, LicenseDir: cfg.licenseDir, TrustedKeys: keys,
		CheckoutTTL: cfg.checkoutTTL, MaxCheckoutsPerClient: cfg.maxCheckoutsPerClient,
		MaxCheckoutsPerAddress: cfg.maxCheckoutsPerAddress,
		UsageRowsPerPeriod:     cfg.usageRowsPerPeriod, UsageMonths: cfg.usageMonths,
		LicenseCheckInterval: cfg.licenseCheckInterval, Version: version.Version, Logger: log,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := srv.Close(); err != nil {
			log.Error("Failed to close the store", "err", err)
		}
	}()

	var auth *server.ClientAuth
	if cfg.clientTokenFile != "" || cfg.tlsCertFile != "" {
		if auth, err = server.LoadClientAuth(cfg.clientTokenFile, cfg.tlsCertFile, cfg.tlsKeyFile); err != nil {
			return err
		}
	}

	clientLn, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", cfg.adminListen)
	if err != nil {
		_ = clientLn.Close()
		return err
	}
	newHTTP := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler: h, ReadTimeout: cfg.readTimeout, ReadHeaderTimeout: cfg.readHeaderTimeout,
			WriteTimeout: cfg.writeTimeout, IdleTimeout: cfg.idleTimeout,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	clientHTTP := newHTTP(auth.Handler(srv.ClientHandler(cfg.maxBodyBytes)))
	clientHTTP.TLSConfig = auth.TLSConfig()
	adminHTTP := newHTTP(srv.AdminHandler(token))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() {
		if clientHTTP.TLSConfig != nil {
			errc <- clientHTTP.ServeTLS(clientLn, "", "")
			return
		}
		errc <- clientHTTP.Serve(clientLn)
	}()
	go func() { errc <- adminHTTP.Serve(adminLn) }()
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var reload <-chan time.Time
	if auth != nil {
		t := time.NewTicker(cfg.clientAuthReloadInterval)
		defer t.Stop()
		reload = t.C
	}
	reloadAuth := func() {
		if auth == nil {
			return
		}
		changed, err := auth.Reload()
		if err != nil {
			log.Error("Failed to reload the client API credentials; the previous ones stay in force", "err", err)
		}
		if len(changed) > 0 {
			log.Info("Reloaded client API credentials", "changed", strings.Join(changed, ", "))
		}
	}
	log.Info("License server started", "listen", clientLn.Addr().String(), "adminListen", adminLn.Addr().String(),
		"role", cfg.role, "version", version.Version, "revision", version.Get().Revision, "clientTLS", clientHTTP.TLSConfig != nil, "clientTokens", cfg.clientTokenFile != "")

	var serveErr error
loop:
	for {
		select {
		case <-hup:
			log.Info("Reloading licences on SIGHUP")
			srv.ReloadLicenses()
			reloadAuth()
		case <-reload:
			reloadAuth()
		case serveErr = <-errc:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	cancel()
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShutdown()
	_ = clientHTTP.Shutdown(shutdownCtx)
	_ = adminHTTP.Shutdown(shutdownCtx)
	<-done
	log.Info("License server stopped")
	if errors.Is(serveErr, http.ErrServerClosed) {
		return nil
	}
	return serveErr
}
