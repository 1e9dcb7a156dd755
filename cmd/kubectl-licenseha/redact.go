package main

import (
	"encoding/base64"
	"encoding/json"
	"regexp"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// redactedText replaces every secret value in a support report.
const redactedText = "[REDACTED]"

// Bounds of the values the redactor looks for. A value shorter than
// minTokenLen cannot be told apart from ordinary text and is not searched
// for; one shorter than minAnywhereLen is replaced only where it stands
// alone (not inside a longer word), so that a short value does not shred
// every word that contains it.
const (
	minTokenLen    = 4
	minAnywhereLen = 8
)

// Patterns replaced whatever Secret they come from: private keys (licence
// and bundle signing keys, TLS keys), licence signatures (a licence file's
// "signature", which is what makes it a licence), bearer tokens and
// passwords in "password: x" or "password=x" form.
var redactPatterns = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----`), redactedText},
	{regexp.MustCompile(`("signature"\s*:\s*")[A-Za-z0-9+/=_-]{16,}(")`), "${1}" + redactedText + "${2}"},
	{regexp.MustCompile(`(?m)(\bsignature:\s*["']?)[A-Za-z0-9+/=_-]{16,}`), "${1}" + redactedText},
	{regexp.MustCompile(`(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}`), "${1}" + redactedText},
	{regexp.MustCompile(`(?i)(\bpassw(?:or)?d["']?\s*[:=]\s*["']?)[^\s"',}]+`), "${1}" + redactedText},
}

// secretJSONKey matches the keys of a JSON document in a Secret whose string
// values are secrets themselves (a licence file's signature, a token in a
// config file), so they are redacted on their own too.
var secretJSONKey = regexp.MustCompile(`(?i)(signature|token|passw|secret|private|credential|^key$)`)

// redactor replaces the values of Secrets in text.
type redactor struct {
	anywhere []string
	tokens   []string
	seen     map[string]bool
}

func newRedactor() *redactor { return &redactor{seen: map[string]bool{}} }

// addSecret adds every value of a Secret except those exempt says are not
// secret.
func (r *redactor) addSecret(s *corev1.Secret, exempt func(secret, key string) bool) {
	for key, v := range s.Data {
		if exempt == nil || !exempt(s.Name, key) {
			r.addValue(string(v))
		}
	}
	for key, v := range s.StringData {
		if exempt == nil || !exempt(s.Name, key) {
			r.addValue(v)
		}
	}
}

// addValue adds a secret value: the value, its lines (a token file, a PEM
// block, a licence file), its base64 encoding, and the secret-looking string
// fields of a JSON value (a licence file's signature).
func (r *redactor) addValue(v string) {
	r.addNeedle(v)
	r.addNeedle(strings.TrimSpace(v))
	if strings.ContainsAny(v, "\r\n") {
		for _, line := range strings.FieldsFunc(v, func(c rune) bool { return c == '\n' || c == '\r' }) {
			r.addNeedle(strings.TrimSpace(line))
		}
	}
	if len(v) >= minTokenLen {
		r.addNeedle(base64.StdEncoding.EncodeToString([]byte(v)))
	}
	var doc any
	if json.Unmarshal([]byte(v), &doc) == nil {
		walkSecretJSON(doc, "", r.addNeedle)
	}
}

func walkSecretJSON(v any, key string, add func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			walkSecretJSON(val, k, add)
		}
	case []any:
		for _, val := range x {
			walkSecretJSON(val, key, add)
		}
	case string:
		if key != "" && secretJSONKey.MatchString(key) {
			add(x)
		}
	}
}

func (r *redactor) addNeedle(n string) {
	if len(n) < minTokenLen || r.seen[n] {
		return
	}
	r.seen[n] = true
	if len(n) < minAnywhereLen {
		r.tokens = append(r.tokens, n)
	} else {
		r.anywhere = append(r.anywhere, n)
	}
}

// values is the number of distinct values searched for.
func (r *redactor) values() int { return len(r.anywhere) + len(r.tokens) }

// redact returns s with every secret value and pattern replaced by
// [REDACTED], and how many replacements it made.
func (r *redactor) redact(s string) (string, int) {
	n := 0
	for _, p := range redactPatterns {
		s = p.re.ReplaceAllStringFunc(s, func(m string) string {
			n++
			return p.re.ReplaceAllString(m, p.with)
		})
	}
	// Longest first, so a value is replaced whole before any of its lines.
	byLen := func(l []string) {
		sort.SliceStable(l, func(i, j int) bool { return len(l[i]) > len(l[j]) })
	}
	byLen(r.anywhere)
	byLen(r.tokens)
	for _, v := range r.anywhere {
		if c := strings.Count(s, v); c > 0 {
			n += c
			s = strings.ReplaceAll(s, v, redactedText)
		}
	}
	for _, v := range r.tokens {
		var c int
		s, c = replaceToken(s, v)
		n += c
	}
	return s, n
}

func wordByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// replaceToken replaces tok where it is not part of a longer word.
func replaceToken(s, tok string) (string, int) {
	if !strings.Contains(s, tok) {
		return s, 0
	}
	var b strings.Builder
	n, i := 0, 0
	for {
		j := strings.Index(s[i:], tok)
		if j < 0 {
			b.WriteString(s[i:])
			return b.String(), n
		}
		j += i
		end := j + len(tok)
		if (j == 0 || !wordByte(s[j-1])) && (end == len(s) || !wordByte(s[end])) {
			b.WriteString(s[i:j])
			b.WriteString(redactedText)
			n++
			i = end
		} else {
			b.WriteString(s[i : j+1])
			i = j + 1
		}
	}
}
