package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
)

// DefaultMaxBodyBytes bounds request bodies of the client API.
const DefaultMaxBodyBytes = 64 << 10

// ClientHandler returns the handler of the client API (see
// docs/license-server.md). Request bodies larger than maxBody bytes are
// refused; 0 means DefaultMaxBodyBytes.
func (s *Server) ClientHandler(maxBody int64) http.Handler {
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/checkouts", withBody(maxBody, http.StatusCreated, func(r *http.Request, req *CheckoutRequest) (any, error) {
		return s.Checkout(*req, "", remoteAddr(r))
	}))
	mux.HandleFunc("PUT /v1/checkouts/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var req CheckoutRequest
		if !decode(w, r, maxBody, &req, true) {
			return
		}
		var c Checkout
		var err error
		if req == (CheckoutRequest{}) {
			c, err = s.Heartbeat(id)
		} else {
			c, err = s.Checkout(req, id, remoteAddr(r))
		}
		respond(w, http.StatusOK, c, err)
	})
	mux.HandleFunc("DELETE /v1/checkouts/{id}", func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusNoContent, nil, s.Release(r.PathValue("id")))
	})
	mux.HandleFunc("POST /v1/checkouts/{id}/usage", withBody(maxBody, http.StatusNoContent, func(r *http.Request, rep *UsageReport) (any, error) {
		return nil, s.ReportUsage(r.PathValue("id"), *rep)
	}))
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, s.Status(), nil)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, map[string]string{"status": "ok"}, nil)
	})
	// The server is ready once it has started: its store is open and the
	// licences are loaded. Whether it serves is its role, which the
	// supervisor reports and the operator's labels route by.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, map[string]string{"status": "ok", "role": string(s.State().Role)}, nil)
	})
	mux.HandleFunc("/", notFound)
	return mux
}

// AdminHandler returns the handler of the admin API. Every request must carry
// "Authorization: Bearer <token>".
func (s *Server) AdminHandler(token []byte) http.Handler {
	const maxBody = 64 << 20 // snapshots with many checkouts
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/state", func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, s.State(), nil)
	})
	mux.HandleFunc("PUT /admin/v1/role", withBody(maxBody, http.StatusOK, func(_ *http.Request, req *RoleRequest) (any, error) {
		err := s.SetRole(*req)
		return s.State(), err
	}))
	mux.HandleFunc("GET /admin/v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, s.Export(), nil)
	})
	mux.HandleFunc("PUT /admin/v1/snapshot", withBody(maxBody, http.StatusOK, func(_ *http.Request, snap *Snapshot) (any, error) {
		err := s.Import(snap)
		return s.State(), err
	}))
	mux.HandleFunc("GET /admin/v1/licenses", func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, s.Licenses(), nil)
	})
	mux.HandleFunc("POST /admin/v1/licenses/reload", func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, s.ReloadLicenses(), nil)
	})
	mux.HandleFunc("GET /admin/v1/settings", func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, s.Settings(), nil)
	})
	mux.HandleFunc("PUT /admin/v1/settings", withBody(maxBody, http.StatusOK, func(_ *http.Request, set *Settings) (any, error) {
		return *set, s.SetSettings(*set)
	}))
	mux.HandleFunc("GET /admin/v1/usage", func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, s.Usage(), nil)
	})
	mux.HandleFunc("PUT /admin/v1/aliases", withBody(maxBody, http.StatusOK, func(_ *http.Request, a *Aliases) (any, error) {
		return *a, s.SetAliases(a.Aliases)
	}))
	mux.HandleFunc("/", notFound)
	return requireToken(token, mux)
}

// withBody handles a request with a JSON body of at most maxBody bytes,
// decoded into a T: handle answers with the value to respond with (status
// on success) and the error.
func withBody[T any](maxBody int64, status int, handle func(r *http.Request, req *T) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req T
		if !decode(w, r, maxBody, &req, false) {
			return
		}
		v, err := handle(r, &req)
		respond(w, status, v, err)
	}
}

func requireToken(token []byte, next http.Handler) http.Handler {
	// Comparing digests keeps the comparison constant-time regardless of
	// the length of what the caller sent.
	want := sha256.Sum256(append([]byte("Bearer "), token...))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if len(token) == 0 || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			writeError(w, http.StatusUnauthorized, Error{Code: CodeUnauthorized, Message: "missing or wrong admin bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, Error{Code: CodeNotFound, Message: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)})
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// decode reads a JSON body into v, refusing unknown fields, trailing data
// and bodies over maxBody. With optional, an empty body leaves v unchanged.
// On failure it writes the error response and returns false.
func decode(w http.ResponseWriter, r *http.Request, maxBody int64, v any, optional bool) bool {
	body := http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON body")
	}
	if err == io.EOF {
		if optional {
			return true
		}
		err = errors.New("request body is empty")
	}
	if err == nil {
		return true
	}
	e := Error{Code: CodeBadRequest, Message: err.Error()}
	status := http.StatusBadRequest
	var maxErr *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &maxErr):
		status, e.Code = http.StatusRequestEntityTooLarge, CodeTooLarge
		e.Message = fmt.Sprintf("request body is larger than %d bytes", maxErr.Limit)
	case errors.As(err, &typeErr):
		e.Field = typeErr.Field
		e.Message = fmt.Sprintf("field %s must be a %s, not a JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.As(err, &syntaxErr):
		e.Message = fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		e.Field = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		e.Message = fmt.Sprintf("unknown field %q", e.Field)
	}
	writeError(w, status, e)
	return false
}

// respond writes v with status, or the error response for err.
func respond(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		status, body := errorStatus(err)
		writeError(w, status, body)
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, v)
}

func errorStatus(err error) (int, Error) {
	var api *apiError
	var field *fieldError
	switch {
	case errors.As(err, &api):
		return api.status, api.body
	case errors.As(err, &field):
		return http.StatusBadRequest, Error{Code: CodeBadRequest, Message: field.Error(), Field: field.field}
	case errors.Is(err, errStaleEpoch):
		return http.StatusConflict, Error{Code: CodeStaleEpoch, Message: err.Error()}
	case errors.Is(err, errStaleSequence):
		return http.StatusConflict, Error{Code: CodeStaleSequence, Message: err.Error(), Field: "seq"}
	case errors.Is(err, errStaleSnapshot):
		return http.StatusConflict, Error{Code: CodeStaleSnapshot, Message: err.Error()}
	}
	return http.StatusInternalServerError, Error{Code: CodeInternal, Message: err.Error()}
}

func writeError(w http.ResponseWriter, status int, e Error) {
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
