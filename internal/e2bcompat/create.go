package e2bcompat

import (
	"context"
	"net/http"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/lifecycle"
)

// newSandbox is E2B's NewSandbox (v1, POST /sandboxes) and NewSandboxV2
// (POST /v2/sandboxes). Fields Nestbox does not act on (mcp, iam,
// volumeMounts, ...) are accepted and ignored, except those
// whose silent loss would lose data.
type newSandbox struct {
	TemplateID          string            `json:"templateID"`
	Timeout             *int              `json:"timeout"`
	Metadata            map[string]string `json:"metadata"`
	EnvVars             map[string]string `json:"envVars"`
	AllowInternetAccess *bool             `json:"allow_internet_access"`
	Network             *struct {
		AllowOut []string `json:"allowOut"`
		DenyOut  []string `json:"denyOut"`
		// AllowPublicTraffic false makes the sandbox's ports private:
		// requests to them must carry the create answer's
		// trafficAccessToken (header e2b-traffic-access-token).
		AllowPublicTraffic *bool `json:"allowPublicTraffic"`
	} `json:"network"`
	// AutoPause pauses the sandbox at its timeout instead of killing it
	// (lifecycle.onTimeout 'pause'); AutoPauseMemory false makes that a
	// filesystem-only pause.
	AutoPause       *bool `json:"autoPause"`
	AutoPauseMemory *bool `json:"autoPauseMemory"`
	AutoResume      *struct {
		Enabled bool `json:"enabled"`
	} `json:"autoResume"`
	// Secure (v1 only): false makes a sandbox whose envd needs no token.
	Secure *bool `json:"secure"`
}

// Default lifetimes of E2B's two create endpoints, in seconds.
const (
	defaultTimeoutV1 = 15
	defaultTimeoutV2 = 300
)

func (a *API) createV1(w http.ResponseWriter, r *http.Request) {
	a.create(w, r, defaultTimeoutV1, true)
}
func (a *API) createV2(w http.ResponseWriter, r *http.Request) {
	a.create(w, r, defaultTimeoutV2, false)
}

// create makes a capsule and answers 201 once it runs, as E2B does.
func (a *API) create(w http.ResponseWriter, r *http.Request, defaultTimeout int, v1 bool) {
	var req newSandbox
	if err := decode(w, r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	creq, opts, err := a.translate(r.Context(), req, defaultTimeout, v1)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	c, err := a.life.Create(r.Context(), team(r), creq, opts...)
	a.record(r, "capsule.create", c.ID, err)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.StartTimeout)
	defer cancel()
	id := c.ID
	c, err = a.life.Wait(ctx, team(r), id, nestbox.StatusRunning)
	if err != nil || c.Status != nestbox.StatusRunning {
		// The client never learns this sandbox's ID (the answer is an
		// error, or nobody is left to read it): destroy it rather than
		// let it run until its timeout.
		if _, derr := a.life.Destroy(context.WithoutCancel(r.Context()), team(r), id); derr != nil {
			a.log.Warn("destroy a sandbox whose create failed", "sandbox", id, "err", derr)
		}
	}
	switch {
	case err != nil:
		a.writeError(w, r, err)
		return
	case c.Status == nestbox.StatusError:
		a.writeError(w, r, &statusError{http.StatusInternalServerError, "sandbox failed to start: " + c.Error})
		return
	case c.Status != nestbox.StatusRunning:
		a.writeError(w, r, errdefs.Unavailable("sandbox %s is %s after %s", id, c.Status, a.cfg.StartTimeout))
		return
	}
	rec, err := a.life.Lookup(r.Context(), team(r), c.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a.sandboxOf(rec))
}

// translate turns E2B's create request into Nestbox's.
func (a *API) translate(ctx context.Context, req newSandbox, defaultTimeout int, v1 bool) (nestbox.CreateCapsuleRequest, []lifecycle.CreateOption, error) {
	out := nestbox.CreateCapsuleRequest{
		Template:       req.TemplateID,
		TimeoutSeconds: defaultTimeout,
		EnvVars:        req.EnvVars,
		Metadata:       req.Metadata,
		Internet:       req.AllowInternetAccess,
	}
	if out.Template == "" {
		out.Template = lifecycle.DefaultTemplate
	}
	if req.Timeout != nil {
		if err := a.checkTimeout(*req.Timeout, nil); err != nil {
			return out, nil, err
		}
		out.TimeoutSeconds = *req.Timeout
	}
	if req.Network != nil {
		out.AllowOut, out.DenyOut = req.Network.AllowOut, req.Network.DenyOut
		out.PublicTraffic = req.Network.AllowPublicTraffic
	}
	if req.AutoPause != nil && *req.AutoPause {
		out.AutoPause = true
		out.AutoPauseMemory = req.AutoPauseMemory
	}
	if req.AutoResume != nil {
		out.AutoResume = req.AutoResume.Enabled
	}
	// The template (a host's, the team's own, or a snapshot's ID or name)
	// is resolved by the lifecycle, which answers an unknown one with
	// not found before anything is made.
	var opts []lifecycle.CreateOption
	if v1 && req.Secure != nil && !*req.Secure {
		opts = append(opts, lifecycle.WithoutAccessToken())
	}
	return out, opts, nil
}
