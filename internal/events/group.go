package events

import (
	"time"

	"nestbox.dev/internal/errdefs"
)

// Check reports a GroupConfig that names no group or no consumer, or has a
// negative ClaimIdle, as errdefs.ErrInvalid.
func (c GroupConfig) Check() error {
	switch {
	case c.Group == "":
		return errdefs.Invalid("consume: no group name")
	case c.Consumer == "":
		return errdefs.Invalid("consume: no consumer name in group %s", c.Group)
	case c.ClaimIdle < 0:
		return errdefs.Invalid("consume: negative claim idle time %s", c.ClaimIdle)
	}
	return nil
}

// Idle is ClaimIdle with its default applied.
func (c GroupConfig) Idle() time.Duration {
	if c.ClaimIdle == 0 {
		return DefaultClaimIdle
	}
	return c.ClaimIdle
}
