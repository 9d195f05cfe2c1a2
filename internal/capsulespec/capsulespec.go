// Package capsulespec decides, once, what the layers of Nestbox would
// otherwise each decide about a capsule's request: the format of capsule
// IDs and their one generator (the control plane's; the host agent only
// accepts IDs), the defaults of an unset template, size and lifetime, and
// the bounds, and the one check of a request (Check) that every layer
// runs. The control plane (lifecycle, the E2B
// layer, the CLI), the host agent and the sandbox drivers import it; it
// imports only the leaf packages errdefs and egress.
package capsulespec

import (
	"crypto/rand"
	"strings"
	"time"
)

// IDLength is the width of every capsule ID, which is also the host
// agent's sandbox ID and the runtime's container ID: fixed width, because
// runsc matches IDs by prefix and none may be a prefix of another.
const IDLength = 20

// Defaults of a request that leaves a field unset.
const (
	DefaultTemplate = "base"
	DefaultVCPUs    = 1
	DefaultMemoryMB = 512
	DefaultTimeout  = 300 * time.Second
)

// Bounds of a request, checked wherever one arrives.
const (
	MaxVCPUs    = 64
	MinMemoryMB = 64
)

// NewID returns a random capsule ID: IDLength characters of [a-z2-7]
// (100 bits).
func NewID() string { return strings.ToLower(rand.Text()[:IDLength]) }

// ValidID reports whether id has the form of a capsule ID: IDLength
// characters of [a-z0-9] (IDs of older agents used the whole alphabet).
func ValidID(id string) bool {
	if len(id) != IDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
