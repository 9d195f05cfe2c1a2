package e2bcompat

import (
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/store"
)

// clientID fills Sandbox.clientID, which E2B's SDK requires and ignores.
const clientID = "nestbox"

// ident is what every E2B view of a sandbox starts with.
type ident struct {
	SandboxID   string `json:"sandboxID"`
	TemplateID  string `json:"templateID"`
	Alias       string `json:"alias,omitempty"`
	ClientID    string `json:"clientID"`
	EnvdVersion string `json:"envdVersion"`
}

func identOf(c nestbox.Capsule) ident {
	return ident{SandboxID: c.ID, TemplateID: c.Template, Alias: c.Template, ClientID: clientID, EnvdVersion: c.EnvdVersion}
}

// sandbox is E2B's Sandbox: the answer of create, connect and resume.
type sandbox struct {
	ident
	EnvdAccessToken    string  `json:"envdAccessToken,omitempty"`
	TrafficAccessToken *string `json:"trafficAccessToken"`
	Domain             *string `json:"domain"`
}

// detail is E2B's SandboxDetail (GET /sandboxes/{id}).
type detail struct {
	ident
	EnvdAccessToken     string            `json:"envdAccessToken,omitempty"`
	Domain              *string           `json:"domain"`
	CPUCount            int               `json:"cpuCount"`
	MemoryMB            int               `json:"memoryMB"`
	DiskSizeMB          int               `json:"diskSizeMB"`
	StartedAt           time.Time         `json:"startedAt"`
	EndAt               time.Time         `json:"endAt"`
	State               string            `json:"state"`
	Metadata            map[string]string `json:"metadata,omitempty"`
	AllowInternetAccess *bool             `json:"allowInternetAccess"`
	Network             *network          `json:"network,omitempty"`
	Lifecycle           lifecycleInfo     `json:"lifecycle"`
}

// listed is E2B's ListedSandbox (GET /v2/sandboxes and GET /sandboxes).
type listed struct {
	ident
	StartedAt  time.Time         `json:"startedAt"`
	EndAt      time.Time         `json:"endAt"`
	CPUCount   int               `json:"cpuCount"`
	MemoryMB   int               `json:"memoryMB"`
	DiskSizeMB int               `json:"diskSizeMB"`
	State      string            `json:"state"`
	Metadata   map[string]string `json:"metadata,omitempty"`
}

type network struct {
	AllowOut           []string `json:"allowOut,omitempty"`
	DenyOut            []string `json:"denyOut,omitempty"`
	AllowPublicTraffic *bool    `json:"allowPublicTraffic,omitempty"`
}

type lifecycleInfo struct {
	OnTimeout  string `json:"onTimeout"`
	AutoResume bool   `json:"autoResume"`
}

// metric is E2B's SandboxMetric.
type metric struct {
	Timestamp     time.Time `json:"timestamp"`
	TimestampUnix int64     `json:"timestampUnix"`
	CPUCount      int       `json:"cpuCount"`
	CPUUsedPct    float64   `json:"cpuUsedPct"`
	MemUsed       uint64    `json:"memUsed"`
	MemTotal      uint64    `json:"memTotal"`
	MemCache      uint64    `json:"memCache"`
	DiskUsed      uint64    `json:"diskUsed"`
	DiskTotal     uint64    `json:"diskTotal"`
}

func (a *API) domain() *string {
	if a.cfg.Domain == "" {
		return nil
	}
	d := a.cfg.Domain
	return &d
}

func (a *API) sandboxOf(c store.Capsule) sandbox {
	sb := sandbox{
		ident:           identOf(c.Capsule),
		EnvdAccessToken: c.AccessToken,
		Domain:          a.domain(),
	}
	if c.TrafficAccessToken != "" {
		tok := c.TrafficAccessToken
		sb.TrafficAccessToken = &tok
	}
	return sb
}

// state is E2B's word for a capsule's status: E2B has only running and
// paused. A pausing capsule is paused to E2B (its pause has been asked
// for), a resuming one running (its resume has).
func state(st nestbox.Status) string {
	switch st {
	case nestbox.StatusPaused, nestbox.StatusPausing:
		return "paused"
	}
	return "running"
}

func times(c nestbox.Capsule) (started, end time.Time) {
	started = c.CreatedAt
	if c.StartedAt != nil {
		started = *c.StartedAt
	}
	if c.ExpiresAt != nil {
		end = *c.ExpiresAt
	}
	return started.UTC(), end.UTC()
}

func (a *API) detailOf(c store.Capsule) detail {
	started, end := times(c.Capsule)
	internet := c.Internet
	d := detail{
		ident:               identOf(c.Capsule),
		EnvdAccessToken:     c.AccessToken,
		Domain:              a.domain(),
		CPUCount:            c.VCPUs,
		MemoryMB:            c.MemoryMB,
		DiskSizeMB:          c.DiskMB,
		StartedAt:           started,
		EndAt:               end,
		State:               state(c.Status),
		Metadata:            c.Metadata,
		AllowInternetAccess: &internet,
		Lifecycle:           lifecycleInfo{OnTimeout: "kill", AutoResume: c.AutoResume},
	}
	if c.AutoPause {
		d.Lifecycle.OnTimeout = "pause"
	}
	if len(c.AllowOut) > 0 || len(c.DenyOut) > 0 || c.TrafficAccessToken != "" {
		d.Network = &network{AllowOut: c.AllowOut, DenyOut: c.DenyOut}
		if c.TrafficAccessToken != "" {
			private := false
			d.Network.AllowPublicTraffic = &private
		}
	}
	return d
}

func listedOf(c nestbox.Capsule) listed {
	started, end := times(c)
	return listed{
		ident:      identOf(c),
		StartedAt:  started,
		EndAt:      end,
		CPUCount:   c.VCPUs,
		MemoryMB:   c.MemoryMB,
		DiskSizeMB: c.DiskMB,
		State:      state(c.Status),
		Metadata:   c.Metadata,
	}
}
