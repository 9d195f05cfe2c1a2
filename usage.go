package nestbox

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// UsageReport is a team's usage per UTC day over a range of days, the
// answer of GET /v1/capsules/usage. Every day of the range has an entry,
// zero when nothing ran.
type UsageReport struct {
	From  string       `json:"from"` // YYYY-MM-DD, UTC
	To    string       `json:"to"`   // YYYY-MM-DD, inclusive
	Days  []UsageDay   `json:"days"`
	Total UsageAmounts `json:"total"`
}

// UsageDay is a team's usage of one UTC day.
type UsageDay struct {
	Date string `json:"date"` // YYYY-MM-DD
	// Capsules is how many capsules ran that day.
	Capsules int `json:"capsules"`
	// Live is true for a day that may still grow: today (and any later
	// day of the range), and a past day with usage that the hourly
	// rollup has not reached yet, computed when asked.
	Live bool `json:"live,omitempty"`
	UsageAmounts
}

// UsageAmounts are what capsules used. The first three are by allocation,
// what a capsule holds while it runs whatever it does with it (how E2B
// bills): vCPUs, memory limit and writable layer size, times the seconds
// it ran. The Used ones are what was measured: CPU time, and memory and
// disk in use, times seconds.
type UsageAmounts struct {
	VCPUSeconds          int64   `json:"vcpu_seconds"`
	MemoryGiBSeconds     float64 `json:"memory_gib_seconds"`
	DiskGiBSeconds       float64 `json:"disk_gib_seconds"`
	CPUSecondsUsed       float64 `json:"cpu_seconds_used"`
	MemoryUsedGiBSeconds float64 `json:"memory_used_gib_seconds"`
	DiskUsedGiBSeconds   float64 `json:"disk_used_gib_seconds"`
}

// UsageOptions select the days of Client.Usage. A zero From or To is the
// server's default: the 30 days ending today.
type UsageOptions struct {
	// From and To are days, read in UTC (their time of day is ignored),
	// both included; at most 92 days.
	From, To time.Time
}

// Usage returns the team's usage per day and in total. A range of more
// than 92 days, or one that ends before it starts, is ErrInvalid.
func (c *Client) Usage(ctx context.Context, opts UsageOptions) (UsageReport, error) {
	q := url.Values{}
	if !opts.From.IsZero() {
		q.Set("from", opts.From.UTC().Format(time.DateOnly))
	}
	if !opts.To.IsZero() {
		q.Set("to", opts.To.UTC().Format(time.DateOnly))
	}
	var r UsageReport
	err := c.do(ctx, http.MethodGet, "/v1/capsules/usage", q, nil, &r)
	return r, err
}
