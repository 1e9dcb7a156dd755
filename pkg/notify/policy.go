package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Policy says which targets notifications may reach. The URL of a webhook
// and the host of an SMTP relay come from a group's spec, which whoever may
// create a group in any namespace writes; without a policy the operator
// would post to, and report errors about, anything it can reach from inside
// the cluster: the API server, cloud metadata services, other workloads.
//
// The zero Policy is the strict one: public addresses only, credentials
// only over TLS.
type Policy struct {
	// AllowInternal permits loopback, private (10/8, 172.16/12, 192.168/16,
	// fc00::/7), shared (100.64/10) and unspecified addresses, and names
	// that resolve inside the cluster (*.svc, *.cluster.local, localhost,
	// single-label names). Link-local addresses (169.254/16, fe80::/10:
	// cloud metadata services live there) and multicast are refused even
	// then.
	AllowInternal bool
	// AllowHTTPCredentials permits a bearer token, or credentials in the
	// URL, over plain http.
	AllowHTTPCredentials bool
}

// ErrRefused is wrapped by every error that refuses a target.
var ErrRefused = errors.New("refused by the notification policy")

func refused(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

// checkHost refuses a host name or address before anything is resolved or
// dialled. Names are checked again, by address, when the connection is made
// (see dialer), so a name that resolves to an internal address (DNS
// rebinding included) is refused as well.
func (p Policy) checkHost(host string) error {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "" {
		return refused("no host")
	}
	if addr, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return p.checkAddr(addr)
	}
	if p.AllowInternal {
		return nil
	}
	switch {
	case h == "localhost" || strings.HasSuffix(h, ".localhost"):
		return refused("%s is the local host", h)
	case strings.HasSuffix(h, ".svc") || strings.HasSuffix(h, ".cluster.local") || strings.Contains(h, ".svc."):
		return refused("%s is a cluster-internal name", h)
	case !strings.Contains(h, "."):
		// Resolved through the pod's search domains: a Service of the
		// operator's namespace, or of the cluster.
		return refused("%s is a single-label name, which resolves inside the cluster", h)
	}
	return nil
}

var (
	sharedSpace = netip.MustParsePrefix("100.64.0.0/10")
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
)

// checkAddr refuses an address the policy does not allow.
func (p Policy) checkAddr(addr netip.Addr) error {
	addr = addr.Unmap().WithZone("")
	if nat64.Contains(addr) {
		// A NAT64 address reaches the IPv4 address in its last 32 bits.
		b := addr.As16()
		addr = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	switch {
	case addr.IsLinkLocalUnicast():
		return refused("%s is a link-local address", addr)
	case addr.IsMulticast() || addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return refused("%s is a multicast or broadcast address", addr)
	case p.AllowInternal:
		return nil
	case addr.IsLoopback():
		return refused("%s is a loopback address", addr)
	case addr.IsUnspecified() || thisNetwork.Contains(addr):
		return refused("%s is an unspecified address (the local host)", addr)
	case addr.IsPrivate() || sharedSpace.Contains(addr):
		return refused("%s is a private, cluster-internal address", addr)
	}
	return nil
}

// dialer connects only to addresses the policy allows: the check runs on the
// address the socket is about to connect to, after name resolution, so a
// name that resolves (or re-resolves) to a forbidden address is refused.
func (p Policy) dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: timeout,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return refused("cannot check address %q: %v", address, err)
			}
			return p.checkAddr(ap.Addr())
		},
	}
}

// checkURL refuses a webhook URL the policy does not allow; withToken says
// whether a bearer token goes with the request.
func (p Policy) checkURL(raw string, withToken bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the whole URL, credentials included.
		return nil, errors.New("not a valid URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTPCredentials {
			if withToken {
				return nil, refused("a bearer token is sent only over https")
			}
			if u.User != nil {
				return nil, refused("credentials in the URL are sent only over https")
			}
		}
	default:
		return nil, refused("scheme %q: only http and https", u.Scheme)
	}
	if err := p.checkHost(u.Hostname()); err != nil {
		return nil, err
	}
	return u, nil
}

// httpClient posts with the policy's dialer, no proxy (a proxy would
// connect on our behalf to whatever it is asked) and no redirects (a
// redirect could lead anywhere, and carry the token to plain http).
func (p Policy) httpClient(timeout time.Duration, tlsConfig *tls.Config) *http.Client {
	d := p.dialer(timeout)
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig:     tlsConfig,
			TLSHandshakeTimeout: timeout,
			ForceAttemptHTTP2:   true,
			MaxIdleConns:        1,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Redact returns a URL fit for logs and Events: scheme, host and path, with
// any credentials and the query (which often carries a token) left out.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<invalid URL>"
	}
	s := u.Scheme + "://"
	if u.User != nil {
		s += "redacted@"
	}
	s += u.Host + u.EscapedPath()
	if u.RawQuery != "" || u.ForceQuery {
		s += "?redacted"
	}
	return s
}
