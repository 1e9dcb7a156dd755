//go:build !linux

package boottime

import "time"

// base anchors the process-local fallback clock. It starts at one hour so
// that no reading is zero or negative (0 means "no deadline" on the wire).
var base = time.Now().Add(-time.Hour)

// Now returns nanoseconds on a clock local to this process: not shared with
// other processes and not counting system suspend. See the package comment.
func Now() int64 {
	return int64(time.Since(base))
}
