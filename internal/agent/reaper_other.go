//go:build !linux

package agent

import (
	"context"

	"github.com/go-logr/logr"
)

// reapOrphans is Linux-only (a sub-reaper is a Linux feature).
func reapOrphans(context.Context, func(int) bool, logr.Logger) {}
