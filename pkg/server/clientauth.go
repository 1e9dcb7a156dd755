package server

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

// ParseClientTokens reads the client API tokens of a group's token Secret
// key (spec.clientAccess.tokenSecretRef), one per line. Surrounding white
// space is trimmed; empty lines and lines starting with # are skipped; a
// token may not contain white space. At least one token is required. The
// license server loads the file with it and the operator checks the Secret
// with it, so both agree on what a valid file is.
func ParseClientTokens(data []byte) ([]string, error) {
	var tokens []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, errors.New("a client token may not contain white space")
		}
		tokens = append(tokens, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(tokens) == 0 {
		return nil, errors.New("no client token (one per line; empty lines and # comments are skipped)")
	}
	return tokens, nil
}

// ClientTokens is the set of bearer tokens the client API accepts. It is
// safe for concurrent use; Set replaces the set while requests are served.
type ClientTokens struct {
	digests atomic.Pointer[[][sha256.Size]byte]
}

// Set replaces the accepted tokens. An empty set refuses every request.
func (t *ClientTokens) Set(tokens []string) {
	d := make([][sha256.Size]byte, len(tokens))
	for i, tok := range tokens {
		d[i] = sha256.Sum256([]byte("Bearer " + tok))
	}
	t.digests.Store(&d)
}

// Allows reports whether an Authorization header value carries one of the
// tokens. Digests of equal length are compared with every token, so the time
// taken says nothing about how much of a token matched or which one did.
func (t *ClientTokens) Allows(authorization string) bool {
	d := t.digests.Load()
	if d == nil || authorization == "" {
		return false
	}
	got := sha256.Sum256([]byte(authorization))
	ok := 0
	for i := range *d {
		ok |= subtle.ConstantTimeCompare(got[:], (*d)[i][:])
	}
	return ok == 1
}

// unauthenticatedPaths are served without a token: they say only that the
// process runs, and load balancers and uptime checks that cannot carry a
// token probe them. Everything else needs one.
var unauthenticatedPaths = map[string]bool{"/healthz": true, "/readyz": true}

// RequireClientToken wraps the client API: every request except GET
// /healthz and GET /readyz must carry "Authorization: Bearer <token>" with
// one of tokens, otherwise it is answered 401 unauthorized with a
// WWW-Authenticate challenge.
func RequireClientToken(tokens *ClientTokens, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && unauthenticatedPaths[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		if !tokens.Allows(r.Header.Get("Authorization")) {
			msg := "this license server requires a client token: send \"Authorization: Bearer <token>\""
			if r.Header.Get("Authorization") != "" {
				msg = "the client token is not accepted by this license server"
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="licenseha"`)
			writeError(w, http.StatusUnauthorized, Error{Code: CodeUnauthorized, Message: msg})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ClientAuth is the client API's protection as configured by files: bearer
// tokens (TokenFile) and a TLS key pair (CertFile, KeyFile). Reload re-reads
// the files, so tokens and certificates rotated in a mounted Secret take
// effect without a restart; a file that fails to load keeps the previous
// content in force.
type ClientAuth struct {
	TokenFile, CertFile, KeyFile string

	tokens ClientTokens
	cert   atomic.Pointer[tls.Certificate]

	mu                        sync.Mutex // serialises Reload
	lastTok, lastCrt, lastKey []byte
}

// LoadClientAuth reads the files; tokenFile may be empty (no tokens), and
// certFile and keyFile are both set or both empty (no TLS).
func LoadClientAuth(tokenFile, certFile, keyFile string) (*ClientAuth, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("the TLS certificate and key files go together: set both or neither")
	}
	a := &ClientAuth{TokenFile: tokenFile, CertFile: certFile, KeyFile: keyFile}
	if _, err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload re-reads the files and applies what changed. It reports what it
// applied, e.g. "client tokens" or "TLS certificate"; on error the previous
// tokens or certificate stay in force.
func (a *ClientAuth) Reload() (changed []string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	if a.TokenFile != "" {
		data, err := os.ReadFile(a.TokenFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("reading client tokens: %w", err))
		case a.lastTok == nil || !bytes.Equal(data, a.lastTok):
			tokens, err := ParseClientTokens(data)
			if err != nil {
				errs = append(errs, fmt.Errorf("client tokens %s: %w", a.TokenFile, err))
				break
			}
			a.tokens.Set(tokens)
			a.lastTok = data
			changed = append(changed, "client tokens")
		}
	}
	if a.CertFile != "" {
		crt, err1 := os.ReadFile(a.CertFile)
		key, err2 := os.ReadFile(a.KeyFile)
		switch {
		case err1 != nil || err2 != nil:
			errs = append(errs, fmt.Errorf("reading the TLS key pair: %w", errors.Join(err1, err2)))
		case a.lastCrt == nil || !bytes.Equal(crt, a.lastCrt) || !bytes.Equal(key, a.lastKey):
			pair, err := tls.X509KeyPair(crt, key)
			if err != nil {
				errs = append(errs, fmt.Errorf("TLS key pair %s, %s: %w", a.CertFile, a.KeyFile, err))
				break
			}
			a.cert.Store(&pair)
			a.lastCrt, a.lastKey = crt, key
			changed = append(changed, "TLS certificate")
		}
	}
	return changed, errors.Join(errs...)
}

// Handler wraps the client API with the token check when tokens are
// configured, and returns it unchanged otherwise.
func (a *ClientAuth) Handler(next http.Handler) http.Handler {
	if a == nil || a.TokenFile == "" {
		return next
	}
	return RequireClientToken(&a.tokens, next)
}

// TLSConfig is the server TLS configuration serving the current certificate,
// or nil when TLS is not configured.
func (a *ClientAuth) TLSConfig() *tls.Config {
	if a == nil || a.CertFile == "" {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return a.cert.Load(), nil
		},
	}
}
