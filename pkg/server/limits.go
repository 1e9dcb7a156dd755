package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"unicode"
	"unicode/utf8"
)

// Bounds of what clients may send and of the state a group synchronises.
//
// The member's agent publishes a snapshot in two Kubernetes objects, each
// holding at most 900 KiB of gzip-compressed JSON (Kubernetes objects hold at
// most 1 MiB): settings and usage statistics in a ConfigMap, checkouts in a
// Secret. The server keeps each half under that limit whatever its clients
// send: usage statistics are budgeted in uncompressed bytes (gzip never
// grows data by more than a few bytes per 32 KiB), settings are bounded
// where the administrator sets them, and checkouts are budgeted on their
// measured compressed size.
const (
	// MaxNameBytes bounds the client, printer and license fields of a
	// checkout request.
	MaxNameBytes = 128
	// MaxIDBytes bounds a checkout id chosen by a client (re-assertion).
	MaxIDBytes = 64
	// OtherPrinter is the printer name of the usage row that counts the
	// printers beyond a period's row cap, and of the rows of aggregated
	// older periods. It is refused as a printer name.
	OtherPrinter = "*"
	// DefaultUsageRowsPerPeriod is the default cap on distinct (licence,
	// printer) usage rows per month.
	DefaultUsageRowsPerPeriod = 1000
	// DefaultUsageMonths is how many monthly periods of usage statistics are
	// kept by default, the current one included.
	DefaultUsageMonths = 13
	// UsageBudgetBytes bounds the usage statistics as JSON, uncompressed.
	UsageBudgetBytes = 512 << 10
	// SettingsBudgetBytes bounds the settings as JSON, uncompressed.
	// Together with UsageBudgetBytes this keeps the ConfigMap half of the
	// synced state below 900 KiB.
	SettingsBudgetBytes = 256 << 10
	// CheckoutBudgetBytes bounds the checkouts as the agent publishes them:
	// gzip-compressed JSON, below the 900 KiB of the Secret half with room to
	// spare for the estimate between measurements.
	CheckoutBudgetBytes = 800 << 10
)

// Count is a non-negative statistics counter. Arithmetic on it saturates at
// the int64 maximum instead of wrapping around. Decoding accepts any JSON
// number: one beyond the int64 range becomes the nearest int64 (so a peer
// that wrote an overflowing number does not make its whole snapshot
// unreadable); a fraction is truncated. Imports then set negative counts to 0.
type Count int64

// UnmarshalJSON reads any JSON number into c, clamped to the int64 range.
func (c *Count) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflect.TypeFor[Count]()}
	}
	f, _, err := big.ParseFloat(string(b), 10, 256, big.ToZero)
	if err != nil {
		// A valid JSON number big.Float cannot hold: its exponent is out
		// of range, huge or tiny.
		e := bytes.IndexAny(b, "eE")
		switch {
		case e < 0:
			return &json.UnmarshalTypeError{Value: "number " + string(b), Type: reflect.TypeFor[Count]()}
		case bytes.HasPrefix(b[e+1:], []byte("-")):
			*c = 0
		case b[0] == '-':
			*c = math.MinInt64
		default:
			*c = math.MaxInt64
		}
		return nil
	}
	i, _ := f.Int(nil) // truncates toward zero
	switch {
	case !i.IsInt64() && i.Sign() > 0:
		*c = math.MaxInt64
	case !i.IsInt64():
		*c = math.MinInt64
	default:
		*c = Count(i.Int64())
	}
	return nil
}

func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	return "value"
}

// addSat adds a non-negative n to c, stopping at the int64 maximum. It
// reports whether it had to stop.
func addSat(c *Count, n int64) bool {
	if n <= 0 {
		return false
	}
	if int64(*c) > math.MaxInt64-n {
		*c = math.MaxInt64
		return true
	}
	*c += Count(n)
	return false
}

// validName checks a client-supplied name: 1 to MaxNameBytes bytes of valid
// UTF-8, printable characters only.
func validName(field, v string) error {
	const allowed = "allowed are 1 to %d bytes of printable UTF-8 characters (letters, marks, digits, punctuation, symbols, the ASCII space)"
	switch {
	case v == "":
		return fieldErrorf(field, "must not be empty; "+allowed, MaxNameBytes)
	case len(v) > MaxNameBytes:
		return fieldErrorf(field, "is %d bytes long; "+allowed, len(v), MaxNameBytes)
	case !utf8.ValidString(v):
		return fieldErrorf(field, "is not valid UTF-8; "+allowed, MaxNameBytes)
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return fieldErrorf(field, "contains the non-printable character %U; "+allowed, r, MaxNameBytes)
		}
	}
	return nil
}

// validID checks a checkout id chosen by a client.
func validID(id string) error {
	const allowed = "allowed are 1 to %d bytes of letters A-Z a-z, digits and . _ ~ -"
	if id == "" || len(id) > MaxIDBytes {
		return fieldErrorf("id", "is %d bytes long; "+allowed, len(id), MaxIDBytes)
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '.', b == '_', b == '~', b == '-':
		default:
			return fieldErrorf("id", "contains %q; "+allowed, rune(b), MaxIDBytes)
		}
	}
	return nil
}

// jsonStringLen is an upper bound of the bytes encoding/json writes for s
// between the quotes (it escapes <, > and & as \u00XX, control characters,
// invalid UTF-8 and U+2028/U+2029).
func jsonStringLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				n++
			} else {
				n += 6
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}

// Longest encodings of a number and of a time in the JSON of records.
const (
	maxInt64JSON = len("-9223372036854775808")
	maxTimeJSON  = len(`"2006-01-02T15:04:05.999999999-07:00"`)
)

// Overheads of one record in a JSON array: the record with empty strings,
// zero numbers and the zero time, minus those, plus a separating comma.
var (
	usageRowOverhead    = emptyJSONLen(UsageRecord{}) - 3*len("0") - len(`"0001-01-01T00:00:00Z"`) + 1
	checkoutRowOverhead = emptyJSONLen(CheckoutRecord{}) + len(`,"address":""`) - len(`"0001-01-01T00:00:00Z"`) + 1
)

func emptyJSONLen(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encoding an empty %T: %v", v, err))
	}
	return len(b)
}

// usageRowBytes is an upper bound of the JSON of u in the usage array.
func usageRowBytes(u *UsageRecord) int {
	return usageRowOverhead + jsonStringLen(u.License) + jsonStringLen(u.Printer) + jsonStringLen(u.Period) +
		3*maxInt64JSON + maxTimeJSON
}

// checkoutRowBytes is an upper bound of the JSON of c in the checkouts array.
func checkoutRowBytes(c *CheckoutRecord) int {
	return checkoutRowOverhead + jsonStringLen(c.ID) + jsonStringLen(c.Client) + jsonStringLen(c.Printer) +
		jsonStringLen(c.Requested) + jsonStringLen(c.License) + jsonStringLen(c.Address) + maxTimeJSON
}
