// Package fakehost is a hand-written host agent for tests of the control
// plane: sandboxes are map entries, and a test can hold creates at a gate,
// fail them, or make the agent unreachable. Test code only.
package fakehost

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/proto/agentpb"
)

// Agent implements the host agent's Connect client interface in memory.
// Its methods are safe for concurrent use.
type Agent struct {
	// gate, if not nil, holds every create until it is closed or the
	// create's context ends.
	Gate chan struct{}
	// OnList, if not nil, runs after ListSandboxes has taken its
	// snapshot and before it answers: a test makes things happen between
	// the host's answer and the caller's next step. Set it before use.
	OnList func()
	// OnFork, if not nil, runs when ForkSandbox is called, with the forks'
	// IDs, before the fake looks at them. Set it before use.
	OnFork func(ids []string)

	// mu guards the fields below.
	mu        sync.Mutex
	sandboxes map[string]*agentpb.Sandbox
	failNext  error // returned by the next create
	// failPause and failResume are returned by the next pause or
	// resume; goneAfterPause makes that failed pause lose the sandbox.
	failPause      error
	failResume     error
	goneAfterPause bool
	// pauseGate, if not nil, holds every pause and resume until closed.
	pauseGate chan struct{}
	resumes   []*agentpb.ResumeSandboxRequest
	// failForks are the errors of the next fork's forks, by fork ID.
	failForks map[string]error
	forks     []*agentpb.ForkSandboxRequest
	// snapshots are the snapshots kept, by ID; failSnapshot fails the
	// next CreateSnapshot (goneAfterSnapshot loses its source), and
	// snapshotGate, if not nil, holds every CreateSnapshot until closed.
	snapshots         map[string]*snapshot
	failSnapshot      error
	goneAfterSnapshot bool
	snapshotGate      chan struct{}
	deletedSnapshots  []string
	snapshotPools     map[string]uint32 // SetSnapshotPools' last call
	poolSets          int               // SetSnapshotPools calls that succeeded
	createConfigs     []*agentpb.SandboxConfig
	down              bool // every call fails with unavailable
	hung              bool // every call blocks until its context ends
	creates           int
	samples           map[string][]*agentpb.SandboxMetrics // metrics history, oldest first
}

// New returns an agent with no sandboxes.
func New() *Agent { return &Agent{sandboxes: map[string]*agentpb.Sandbox{}} }

// FailNextCreate makes the next create fail with err.
func (f *Agent) FailNextCreate(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = err
}

// SetDown makes every call fail as an unreachable agent's would, or not.
func (f *Agent) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// SetHung makes every call block until its context ends, as an agent that
// accepts connections but never answers would, or not.
func (f *Agent) SetHung(hung bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hung = hung
}

// hang blocks until ctx ends if the agent is hung, and then returns the
// error a client sees.
func (f *Agent) hang(ctx context.Context) error {
	f.mu.Lock()
	hung := f.hung
	f.mu.Unlock()
	if !hung {
		return nil
	}
	<-ctx.Done()
	return connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
}

// reach is what every call meets first: a hung agent blocks until ctx
// ends, a down one fails as unreachable.
func (f *Agent) reach(ctx context.Context) error {
	if err := f.hang(ctx); err != nil {
		return err
	}
	if f.isDown() {
		return errDown
	}
	return nil
}

// Forget drops a sandbox behind the control plane's back, as a crash would.
func (f *Agent) Forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sandboxes, id)
}

// CreateConfigs returns the configs of the creates that reached the agent,
// as sent, oldest first.
func (f *Agent) CreateConfigs() []*agentpb.SandboxConfig {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.createConfigs)
}

// Creates counts the creates that reached the agent.
func (f *Agent) Creates() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates
}

var errDown = connect.NewError(connect.CodeUnavailable, errors.New("agent is down"))

func (f *Agent) isDown() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

// Has reports whether the agent runs sandbox id.
func (f *Agent) Has(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.sandboxes[id]
	return ok
}

// Count is the number of sandboxes.
func (f *Agent) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sandboxes)
}

func (f *Agent) CreateSandbox(ctx context.Context, req *connect.Request[agentpb.CreateSandboxRequest]) (*connect.Response[agentpb.CreateSandboxResponse], error) {
	if err := f.reach(ctx); err != nil {
		return nil, err
	}
	if f.Gate != nil {
		select {
		case <-f.Gate:
		case <-ctx.Done():
			return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates++
	if err := f.failNext; err != nil {
		f.failNext = nil
		return nil, err
	}
	cfg := proto.CloneOf(req.Msg.GetConfig())
	f.createConfigs = append(f.createConfigs, proto.CloneOf(cfg))
	if cfg.GetSnapshotId() != "" {
		if err := f.fromSnapshot(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.GetDiskBytes() == 0 {
		cfg.DiskBytes = DefaultDiskBytes // as a real agent resolves the default
	}
	sb := &agentpb.Sandbox{
		Id:          cfg.GetId(),
		Config:      cfg,
		State:       agentpb.SandboxState_SANDBOX_STATE_RUNNING,
		StartedAt:   timestamppb.Now(),
		EndAt:       timestamppb.New(time.Now().Add(time.Duration(cfg.GetTimeoutSeconds()) * time.Second)),
		EnvdVersion: "0.6.13",
	}
	f.sandboxes[sb.Id] = sb
	return connect.NewResponse(&agentpb.CreateSandboxResponse{Sandbox: sb}), nil
}

// FailForks makes the forks with these IDs fail with their error in the
// next ForkSandbox.
func (f *Agent) FailForks(errs map[string]error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failForks = errs
}

// Forks returns the fork requests received, oldest first.
func (f *Agent) Forks() []*agentpb.ForkSandboxRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.forks)
}

// ForkSandbox makes each fork a running copy of the source's config with
// the fork's id, timeout, token and metadata, unless FailForks named it.
func (f *Agent) ForkSandbox(ctx context.Context, req *connect.Request[agentpb.ForkSandboxRequest]) (*connect.Response[agentpb.ForkSandboxResponse], error) {
	if err := f.reach(ctx); err != nil {
		return nil, err
	}
	if f.OnFork != nil {
		var ids []string
		for _, fc := range req.Msg.GetForks() {
			ids = append(ids, fc.GetId())
		}
		f.OnFork(ids)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forks = append(f.forks, req.Msg)
	src, ok := f.sandboxes[req.Msg.GetId()]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such sandbox"))
	}
	if src.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("sandbox is not running"))
	}
	fails := f.failForks
	f.failForks = nil
	resp := &agentpb.ForkSandboxResponse{Source: src}
	for _, fc := range req.Msg.GetForks() {
		if err := fails[fc.GetId()]; err != nil {
			resp.Forks = append(resp.Forks, &agentpb.ForkResult{Id: fc.GetId(), Error: err.Error(), ErrorCode: connect.CodeOf(err).String()})
			continue
		}
		cfg := proto.CloneOf(src.GetConfig())
		cfg.Id, cfg.TimeoutSeconds, cfg.AccessToken, cfg.Metadata, cfg.AutoPause = fc.GetId(), fc.GetTimeoutSeconds(), fc.GetAccessToken(), fc.GetMetadata(), fc.GetAutoPause()
		sb := &agentpb.Sandbox{
			Id:          cfg.GetId(),
			Config:      cfg,
			State:       agentpb.SandboxState_SANDBOX_STATE_RUNNING,
			StartedAt:   timestamppb.Now(),
			EndAt:       timestamppb.New(time.Now().Add(time.Duration(cfg.GetTimeoutSeconds()) * time.Second)),
			EnvdVersion: src.GetEnvdVersion(),
		}
		f.sandboxes[sb.Id] = sb
		resp.Forks = append(resp.Forks, &agentpb.ForkResult{Id: sb.Id, Sandbox: sb})
	}
	return connect.NewResponse(resp), nil
}

// DefaultDiskBytes is the disk the fake gives a sandbox that asks for
// none, as a real agent gives its --default-rootfs-size.
const DefaultDiskBytes = 5 << 30

func (f *Agent) DestroySandbox(ctx context.Context, req *connect.Request[agentpb.DestroySandboxRequest]) (*connect.Response[agentpb.DestroySandboxResponse], error) {
	if err := f.reach(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sandboxes, req.Msg.GetId())
	delete(f.samples, req.Msg.GetId())
	return connect.NewResponse(&agentpb.DestroySandboxResponse{}), nil
}

func (f *Agent) GetSandbox(ctx context.Context, req *connect.Request[agentpb.GetSandboxRequest]) (*connect.Response[agentpb.GetSandboxResponse], error) {
	if err := f.hang(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, ok := f.sandboxes[req.Msg.GetId()]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such sandbox"))
	}
	return connect.NewResponse(&agentpb.GetSandboxResponse{Sandbox: sb}), nil
}

func (f *Agent) ListSandboxes(ctx context.Context, req *connect.Request[agentpb.ListSandboxesRequest]) (*connect.Response[agentpb.ListSandboxesResponse], error) {
	if err := f.reach(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	out := &agentpb.ListSandboxesResponse{}
	for _, sb := range f.sandboxes {
		out.Sandboxes = append(out.Sandboxes, sb)
	}
	f.mu.Unlock()
	if f.OnList != nil {
		f.OnList()
	}
	return connect.NewResponse(out), nil
}

func (f *Agent) SetTimeout(ctx context.Context, req *connect.Request[agentpb.SetTimeoutRequest]) (*connect.Response[agentpb.SetTimeoutResponse], error) {
	if err := f.hang(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, ok := f.sandboxes[req.Msg.GetId()]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such sandbox"))
	}
	sb.EndAt = timestamppb.New(time.Now().Add(time.Duration(req.Msg.GetTimeoutSeconds()) * time.Second))
	return connect.NewResponse(&agentpb.SetTimeoutResponse{EndAt: sb.EndAt}), nil
}

func (f *Agent) GetSandboxMetrics(ctx context.Context, req *connect.Request[agentpb.GetSandboxMetricsRequest]) (*connect.Response[agentpb.GetSandboxMetricsResponse], error) {
	if err := f.hang(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := req.Msg.GetId()
	if _, ok := f.sandboxes[id]; !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such sandbox"))
	}
	resp := &agentpb.GetSandboxMetricsResponse{Metrics: &agentpb.SandboxMetrics{At: timestamppb.Now(), CpuCount: 1, MemoryTotalBytes: 512 << 20}}
	if start, end := req.Msg.Start, req.Msg.End; start != nil || end != nil {
		for _, m := range f.samples[id] {
			at := m.GetAt().AsTime()
			if (start == nil || !at.Before(start.AsTime())) && (end == nil || !at.After(end.AsTime())) {
				resp.History = append(resp.History, m)
			}
		}
	}
	return connect.NewResponse(resp), nil
}

// AddSample adds m to sandbox id's metrics history, as the real agent's
// periodic sampling does; samples are kept in the order added. The
// history goes with the sandbox.
func (f *Agent) AddSample(id string, m *agentpb.SandboxMetrics) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.samples == nil {
		f.samples = map[string][]*agentpb.SandboxMetrics{}
	}
	f.samples[id] = append(f.samples[id], m)
}

func (f *Agent) Ping(ctx context.Context, req *connect.Request[agentpb.PingRequest]) (*connect.Response[agentpb.PingResponse], error) {
	if err := f.hang(ctx); err != nil {
		return nil, err
	}
	return connect.NewResponse(&agentpb.PingResponse{Driver: "fake"}), nil
}

func (f *Agent) ListTemplates(ctx context.Context, req *connect.Request[agentpb.ListTemplatesRequest]) (*connect.Response[agentpb.ListTemplatesResponse], error) {
	if err := f.hang(ctx); err != nil {
		return nil, err
	}
	return connect.NewResponse(&agentpb.ListTemplatesResponse{Templates: []*agentpb.Template{{Name: "base", Built: true, SizeBytes: 1 << 20}}}), nil
}

// Hosts is a lifecycle.Hosts of one host.
type Hosts struct{ Host lifecycle.Host }

// Pick returns the host.
func (o Hosts) Pick(context.Context, nestbox.CreateCapsuleRequest) (lifecycle.Host, error) {
	return o.Host, nil
}

// All returns the host.
func (o Hosts) All() []lifecycle.Host { return []lifecycle.Host{o.Host} }

// Get returns the host if id is its ID.
func (o Hosts) Get(id string) (lifecycle.Host, error) {
	if id != o.Host.ID {
		return lifecycle.Host{}, errdefs.NotFound("host %s", id)
	}
	return o.Host, nil
}

// CreateRequest is a minimal create request for sandbox id.
func CreateRequest(id string) *agentpb.CreateSandboxRequest {
	return &agentpb.CreateSandboxRequest{Config: &agentpb.SandboxConfig{Id: id, TimeoutSeconds: 300}}
}

// FailNextPause makes the next pause fail with err; with gone, that pause
// loses the sandbox (as a runsc that died mid-checkpoint would), else the
// sandbox keeps running, as the agent's contract says.
func (f *Agent) FailNextPause(err error, gone bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failPause, f.goneAfterPause = err, gone
}

// FailNextResume makes the next resume fail with err. A data_loss error
// leaves the sandbox paused with its files (a snapshot that failed its
// check is never restored); any other destroys it, as the agent does with
// a half-restored sandbox.
func (f *Agent) FailNextResume(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failResume = err
}

// HoldPauses makes pauses and resumes wait until the returned function is
// called (or their context ends).
func (f *Agent) HoldPauses() (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.pauseGate = ch
	f.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// Resumes returns the resume requests the agent received, in order.
func (f *Agent) Resumes() []*agentpb.ResumeSandboxRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*agentpb.ResumeSandboxRequest(nil), f.resumes...)
}

// State is the state of sandbox id, UNSPECIFIED if the agent has none.
func (f *Agent) State(id string) agentpb.SandboxState {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sb, ok := f.sandboxes[id]; ok {
		return sb.State
	}
	return agentpb.SandboxState_SANDBOX_STATE_UNSPECIFIED
}

// AutoPause pauses sandbox id by itself, as the agent does at the end of
// an auto-pause sandbox's timeout (the test then posts the event).
func (f *Agent) AutoPause(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sb, ok := f.sandboxes[id]; ok {
		sb.State, sb.PausedAt, sb.PauseTier = agentpb.SandboxState_SANDBOX_STATE_PAUSED, timestamppb.Now(), "disk"
		sb.FilesystemOnly = sb.GetConfig().GetAutoPauseFilesystemOnly()
	}
}

func (f *Agent) holdPause(ctx context.Context) error {
	f.mu.Lock()
	gate := f.pauseGate
	f.mu.Unlock()
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
	}
}

// PauseSandbox pauses a running sandbox: failed_precondition if it is not
// running.
func (f *Agent) PauseSandbox(ctx context.Context, req *connect.Request[agentpb.PauseSandboxRequest]) (*connect.Response[agentpb.PauseSandboxResponse], error) {
	if err := f.reach(ctx); err != nil {
		return nil, err
	}
	if err := f.holdPause(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := req.Msg.GetId()
	sb, ok := f.sandboxes[id]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such sandbox"))
	}
	if err := f.failPause; err != nil {
		f.failPause = nil
		if f.goneAfterPause {
			delete(f.sandboxes, id)
		}
		return nil, err
	}
	if sb.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("sandbox is not running"))
	}
	sb.State, sb.PausedAt, sb.PauseTier, sb.FilesystemOnly = agentpb.SandboxState_SANDBOX_STATE_PAUSED, timestamppb.Now(), "disk", req.Msg.GetFilesystemOnly()
	return connect.NewResponse(&agentpb.PauseSandboxResponse{Sandbox: sb}), nil
}

// ResumeSandbox resumes a paused sandbox: failed_precondition if it is not
// paused.
func (f *Agent) ResumeSandbox(ctx context.Context, req *connect.Request[agentpb.ResumeSandboxRequest]) (*connect.Response[agentpb.ResumeSandboxResponse], error) {
	if err := f.reach(ctx); err != nil {
		return nil, err
	}
	if err := f.holdPause(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resumes = append(f.resumes, req.Msg)
	id := req.Msg.GetId()
	sb, ok := f.sandboxes[id]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such sandbox"))
	}
	if err := f.failResume; err != nil {
		f.failResume = nil
		if connect.CodeOf(err) != connect.CodeDataLoss {
			delete(f.sandboxes, id)
		}
		return nil, err
	}
	if sb.State != agentpb.SandboxState_SANDBOX_STATE_PAUSED {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("sandbox is not paused"))
	}
	timeout := time.Duration(req.Msg.GetTimeoutSeconds()) * time.Second
	if timeout == 0 {
		timeout = 300 * time.Second
	}
	sb.State, sb.PausedAt, sb.PauseTier, sb.FilesystemOnly = agentpb.SandboxState_SANDBOX_STATE_RUNNING, nil, "", false
	sb.EndAt = timestamppb.New(time.Now().Add(timeout))
	return connect.NewResponse(&agentpb.ResumeSandboxResponse{Sandbox: sb}), nil
}
