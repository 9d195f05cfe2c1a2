package platform

import (
	"nestbox.dev"
	"nestbox.dev/internal/audit"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/mail"
	"nestbox.dev/internal/store"
)

// The control plane's own types, named here so that a program outside
// this module can name what it is handed. They are aliases: a value of
// one is the control plane's, with all its methods.
type (
	// Store is the control plane's database: capsules, teams, users,
	// keys, audit entries, usage. Its methods are safe for concurrent
	// use; errors carry the kinds of docs/api.md (not found, conflict,
	// ...).
	Store = store.Store
	// Capsule, Team, User and APIKey are the store's records.
	Capsule = store.Capsule
	Team    = store.Team
	User    = store.User
	APIKey  = store.APIKey
	// CapsuleFilter selects capsules (Lifecycle.List, Store.ListCapsules).
	CapsuleFilter = store.CapsuleFilter
	// Quota is what a team may hold at once (Limits.TeamQuota).
	Quota = store.Quota

	// AuditLog writes and reads the audit log (Record, List).
	AuditLog = audit.Logger
	// AuditEntry is one entry of the audit log: the public type the API
	// answers with, the same the core writes.
	AuditEntry = nestbox.AuditEntry
	// AuditFilter selects audit entries (AuditLog.List).
	AuditFilter = store.AuditFilter

	// Mailer sends one message; MailMessage is one, with a text part and
	// an optional HTML part.
	Mailer      = mail.Mailer
	MailMessage = mail.Message

	// Lifecycle drives capsules: Create, Get, List, Destroy, Pause,
	// Resume, Fork, SetTimeout, snapshots and templates, within the
	// team's quotas and the operator's limits. The control plane owns its
	// Run, Close and host-facing methods (HandleHostEvent, Reconcile...):
	// an extension calls the team-facing ones.
	Lifecycle = lifecycle.Service
	// PauseOptions, ResumeOptions, ForkOptions, SnapshotOptions and
	// SnapshotFilter are the options of Lifecycle's methods of those
	// names.
	PauseOptions    = lifecycle.PauseOptions
	ResumeOptions   = lifecycle.ResumeOptions
	ForkOptions     = lifecycle.ForkOptions
	SnapshotOptions = lifecycle.SnapshotOptions
	SnapshotFilter  = lifecycle.SnapshotFilter
	// Limits are the operator's limits on capsules and teams' quotas.
	Limits = lifecycle.Limits
)
