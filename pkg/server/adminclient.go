package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// AdminClient calls the admin API of one server. It is safe for concurrent use.
type AdminClient struct {
	base  string
	token string
	http  *http.Client
}

// NewAdminClient returns a client for the admin API at baseURL (for example
// "http://127.0.0.1:5161") authenticating with token. A nil httpClient means
// http.DefaultClient; callers should bound requests with their contexts.
func NewAdminClient(baseURL, token string, httpClient *http.Client) *AdminClient {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &AdminClient{base: strings.TrimRight(baseURL, "/"), token: token, http: httpClient}
}

// ResponseError is an error answer of a license server.
type ResponseError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Body is the decoded error body.
	Body Error
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("license server answered %d %s: %s", e.StatusCode, e.Body.Code, e.Body.Message)
}

// IsCode reports whether err is a ResponseError with the given code (one of the Code* constants).
func IsCode(err error, code string) bool {
	var re *ResponseError
	return errors.As(err, &re) && re.Body.Code == code
}

// State returns the server's role, epoch and revision.
func (c *AdminClient) State(ctx context.Context) (*State, error) {
	var st State
	return &st, c.do(ctx, http.MethodGet, "/admin/v1/state", nil, &st)
}

// SetRole changes the server's role. A fence (standby, witness) is applied
// whatever its epoch; role active with an epoch older than the server's
// fails with CodeStaleEpoch. A request whose seq is not greater than the
// last one applied fails with CodeStaleSequence (see RoleRequest.Seq).
func (c *AdminClient) SetRole(ctx context.Context, req RoleRequest) (*State, error) {
	var st State
	return &st, c.do(ctx, http.MethodPut, "/admin/v1/role", req, &st)
}

// Export takes a state snapshot.
func (c *AdminClient) Export(ctx context.Context) (*Snapshot, error) {
	var snap Snapshot
	return &snap, c.do(ctx, http.MethodGet, "/admin/v1/snapshot", nil, &snap)
}

// ExportRaw takes a state snapshot as JSON, for callers that store it as is.
func (c *AdminClient) ExportRaw(ctx context.Context) ([]byte, error) {
	var raw rawBody
	err := c.do(ctx, http.MethodGet, "/admin/v1/snapshot", nil, &raw)
	return raw, err
}

// Import applies a snapshot; an older one fails with CodeStaleSnapshot.
func (c *AdminClient) Import(ctx context.Context, snap *Snapshot) (*State, error) {
	var st State
	return &st, c.do(ctx, http.MethodPut, "/admin/v1/snapshot", snap, &st)
}

// ImportRaw applies a snapshot given as JSON.
func (c *AdminClient) ImportRaw(ctx context.Context, snap []byte) (*State, error) {
	var st State
	return &st, c.do(ctx, http.MethodPut, "/admin/v1/snapshot", rawBody(snap), &st)
}

// Licenses lists the licence files with their validity.
func (c *AdminClient) Licenses(ctx context.Context) ([]LicenseStatus, error) {
	var out []LicenseStatus
	return out, c.do(ctx, http.MethodGet, "/admin/v1/licenses", nil, &out)
}

// ReloadLicenses makes the server re-read its licence directory.
func (c *AdminClient) ReloadLicenses(ctx context.Context) ([]LicenseStatus, error) {
	var out []LicenseStatus
	return out, c.do(ctx, http.MethodPost, "/admin/v1/licenses/reload", nil, &out)
}

// Settings returns the server's settings.
func (c *AdminClient) Settings(ctx context.Context) (*Settings, error) {
	var s Settings
	return &s, c.do(ctx, http.MethodGet, "/admin/v1/settings", nil, &s)
}

// SetSettings replaces the server's settings.
func (c *AdminClient) SetSettings(ctx context.Context, s Settings) error {
	return c.do(ctx, http.MethodPut, "/admin/v1/settings", s, nil)
}

// Usage returns the usage statistics.
func (c *AdminClient) Usage(ctx context.Context) ([]UsageRecord, error) {
	var out []UsageRecord
	return out, c.do(ctx, http.MethodGet, "/admin/v1/usage", nil, &out)
}

// SetAliases replaces the mapping of the peer's licence ids to local ones.
func (c *AdminClient) SetAliases(ctx context.Context, aliases map[string]string) error {
	return c.do(ctx, http.MethodPut, "/admin/v1/aliases", Aliases{Aliases: aliases}, nil)
}

// rawBody is a JSON body sent or received as is, without re-encoding.
type rawBody []byte

func (c *AdminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if raw, ok := in.(rawBody); ok {
		body = bytes.NewReader(raw)
	} else if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	switch out := out.(type) {
	case nil:
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	case *rawBody:
		data, err := io.ReadAll(resp.Body)
		*out = data
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding %s %s answer: %w", method, path, err)
	}
	return nil
}

// decodeError reads an error answer into a ResponseError.
func decodeError(resp *http.Response) error {
	re := &ResponseError{StatusCode: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err := json.Unmarshal(data, &re.Body); err != nil || re.Body.Code == "" {
		re.Body = Error{Code: CodeInternal, Message: strings.TrimSpace(string(data))}
	}
	return re
}
