package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// auditColumns are the columns scanAuditEntry reads, in its order.
const auditColumns = `id, created_at, scope, team_id, actor_type, actor_id, actor_name,
	resource_type, resource_id, action, status, metadata`

const auditColumnCount = 12

// InsertAuditEntry inserts one row.
func (s *Store) InsertAuditEntry(ctx context.Context, e nestbox.AuditEntry) error {
	_, err := s.writer().exec(ctx, "INSERT INTO audit_entries ("+auditColumns+") VALUES ("+placeholders(auditColumnCount)+")",
		e.ID, s.d.time(e.Time), string(e.Scope), e.TeamID, string(e.Actor.Type), e.Actor.ID, e.Actor.Name,
		e.ResourceType, e.ResourceID, e.Action, string(e.Status), formatMap(e.Metadata))
	if err != nil {
		return fmt.Errorf("insert audit entry %s: %w", e.ID, err)
	}
	return nil
}

func scanAuditEntry(d *Dialect, row scanner) (nestbox.AuditEntry, error) {
	var e nestbox.AuditEntry
	err := row.Scan(&e.ID, d.timeCol(&e.Time), &e.Scope, &e.TeamID, &e.Actor.Type, &e.Actor.ID, &e.Actor.Name,
		&e.ResourceType, &e.ResourceID, &e.Action, &e.Status, mapCol{&e.Metadata})
	return e, err
}

// ListAuditEntries pages by (created_at, id) descending, as ListSnapshots
// does; the team and scope indexes serve the two ways the API asks.
func (s *Store) ListAuditEntries(ctx context.Context, f store.AuditFilter) ([]nestbox.AuditEntry, string, error) {
	limit, err := pageLimit("list audit entries", f.Limit)
	if err != nil {
		return nil, "", err
	}
	if f.Action != "" && (f.ResourceType == "" || !strings.HasPrefix(f.Action, f.ResourceType+".")) {
		return nil, "", errdefs.Invalid("list audit entries: action %q needs its resource type (%q is not it)", f.Action, f.ResourceType)
	}
	var where []string
	var args []any
	for _, eq := range []struct{ col, v string }{
		{"team_id", f.TeamID}, {"scope", string(f.Scope)}, {"resource_type", f.ResourceType}, {"action", f.Action}, {"actor_id", f.ActorID},
	} {
		if eq.v != "" {
			where = append(where, eq.col+" = ?")
			args = append(args, eq.v)
		}
	}
	if !f.From.IsZero() {
		where = append(where, "created_at >= ?")
		args = append(args, s.d.time(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "created_at < ?")
		args = append(args, s.d.time(f.To))
	}
	return page[nestbox.AuditEntry]{
		what: "list audit entries", columns: auditColumns, table: "audit_entries", where: where, args: args,
		cursor: f.Cursor, limit: limit,
		scan: func(row scanner) (nestbox.AuditEntry, error) { return scanAuditEntry(&s.d, row) },
		key:  func(e nestbox.AuditEntry) (time.Time, string) { return e.Time, e.ID },
	}.list(ctx, s)
}

// AnonymiseAuditEntries finds the entries that name the user (as actor or
// resource) or may hold its email (a case-insensitive LIKE over the
// metadata's JSON text, which can only find too many: each candidate's
// metadata is then checked exactly here), rewrites their metadata, and
// clears the user's IDs with two UPDATEs, all in one transaction.
func (s *Store) AnonymiseAuditEntries(ctx context.Context, userID string) (int, error) {
	if userID == "" {
		return 0, errdefs.Invalid("anonymise audit entries: no user ID")
	}
	n := 0
	err := s.inTx(ctx, func(tx conn) error {
		var email string
		err := tx.row(ctx, "SELECT email FROM users WHERE id = ?", userID).Scan(&email)
		if errors.Is(err, sql.ErrNoRows) {
			return errdefs.NotFound("user %s not found", userID)
		}
		if err != nil {
			return s.d.Kind(err)
		}
		cond := "actor_id = ? OR resource_id = ?"
		args := []any{userID, userID}
		if email != "" {
			for _, f := range jsonForms(email) {
				cond += ` OR LOWER(CAST(metadata AS TEXT)) LIKE ? ESCAPE '\'`
				args = append(args, "%"+likeEscape(strings.ToLower(f))+"%")
			}
		}
		rows, err := tx.query(ctx, "SELECT id, actor_id, resource_id, metadata FROM audit_entries WHERE "+cond, args...)
		if err != nil {
			return err
		}
		type candidate struct {
			id, actor, resource string
			meta                map[string]string
		}
		cands, err := collect(rows, func(row scanner) (candidate, error) {
			var c candidate
			err := row.Scan(&c.id, &c.actor, &c.resource, mapCol{&c.meta})
			return c, err
		})
		if err != nil {
			return err
		}
		changed := map[string]bool{}
		for _, c := range cands {
			about := c.actor == userID || c.resource == userID
			if about {
				changed[c.id] = true
			}
			meta, ok := scrubEmail(c.meta, email, about)
			if !ok {
				continue
			}
			changed[c.id] = true
			if _, err := tx.exec(ctx, "UPDATE audit_entries SET metadata = ? WHERE id = ?", formatMap(meta), c.id); err != nil {
				return err
			}
		}
		if _, err := tx.exec(ctx, "UPDATE audit_entries SET actor_id = '', actor_name = ? WHERE actor_id = ?", store.AnonymousActor, userID); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, "UPDATE audit_entries SET resource_id = '' WHERE resource_id = ?", userID); err != nil {
			return err
		}
		n = len(changed)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("anonymise audit entries of %s: %w", userID, err)
	}
	return n, nil
}

// scrubEmail returns m without the values that hold email (compared
// case-insensitively; "" holds nothing) and, if about, without the key
// "email"; ok is false when nothing was removed.
func scrubEmail(m map[string]string, email string, about bool) (map[string]string, bool) {
	out := map[string]string{}
	removed := false
	lower := strings.ToLower(email)
	for k, v := range m {
		if (about && k == "email") || (email != "" && strings.Contains(strings.ToLower(v), lower)) {
			removed = true
			continue
		}
		out[k] = v
	}
	return out, removed
}

// jsonForms are the forms s may take inside a JSON string in the
// metadata column, without the quotes: with <, > and & escaped (formatMap's
// text, which SQLite keeps) and without (PostgreSQL's JSONB text).
func jsonForms(s string) []string {
	var forms []string
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		_ = enc.Encode(s) // a string always encodes
		f := strings.TrimSuffix(b.String(), "\n")
		f = f[1 : len(f)-1]
		if len(forms) == 0 || forms[0] != f {
			forms = append(forms, f)
		}
	}
	return forms
}

// likeEscape escapes the wildcards of LIKE (and its escape character,
// backslash) so that s matches only itself.
func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// DeleteAuditEntriesBefore deletes the oldest rows first, a batch at a
// time. The IN on scope lets the scope index serve the range on
// created_at on both databases.
func (s *Store) DeleteAuditEntriesBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, errdefs.Invalid("delete audit entries: limit %d, want more than 0", limit)
	}
	res, err := s.writer().exec(ctx, `DELETE FROM audit_entries WHERE id IN (
		SELECT id FROM audit_entries WHERE scope IN ('team', 'admin') AND created_at < ? ORDER BY created_at LIMIT ?)`,
		s.d.time(before), limit)
	if err != nil {
		return 0, fmt.Errorf("delete audit entries before %s: %w", before.Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// AuditTeamsOver reads the audit_entries_scope_team index alone: scope
// team is one range of it, in team order.
func (s *Store) AuditTeamsOver(ctx context.Context, keep int) ([]string, error) {
	if keep < 0 {
		return nil, errdefs.Invalid("audit teams over: keep %d, want 0 or more", keep)
	}
	rows, err := s.reader().query(ctx, `SELECT team_id FROM audit_entries WHERE scope = 'team'
		GROUP BY team_id HAVING COUNT(*) > ? ORDER BY team_id`, keep)
	if err != nil {
		return nil, fmt.Errorf("audit teams over %d entries: %w", keep, err)
	}
	ids, err := collect(rows, func(row scanner) (string, error) {
		var id string
		return id, row.Scan(&id)
	})
	if err != nil {
		return nil, fmt.Errorf("audit teams over %d entries: %w", keep, err)
	}
	return ids, nil
}

// DeleteAuditEntriesBeyond finds the newest entry past the keep newest
// (one step of OFFSET keep down the team's index) and deletes from the
// oldest up to it, so that a pass cut short leaves the newest entries and
// no gap. Entries inserted meanwhile are newer than that boundary: they
// only push more entries past keep, never one of the keep into the
// delete.
func (s *Store) DeleteAuditEntriesBeyond(ctx context.Context, teamID string, keep, limit int) (int, error) {
	if keep < 0 || limit <= 0 {
		return 0, errdefs.Invalid("delete audit entries of %s: keep %d and limit %d, want 0 or more and more than 0", teamID, keep, limit)
	}
	var (
		at time.Time
		id string
	)
	err := s.reader().row(ctx, `SELECT created_at, id FROM audit_entries WHERE scope = 'team' AND team_id = ?
		ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?`, teamID, keep).Scan(s.d.timeCol(&at), &id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("delete audit entries of %s: %w", teamID, err)
	}
	res, err := s.writer().exec(ctx, `DELETE FROM audit_entries WHERE id IN (
		SELECT id FROM audit_entries WHERE scope = 'team' AND team_id = ? AND (created_at, id) <= (?, ?)
		ORDER BY created_at, id LIMIT ?)`, teamID, s.d.time(at), id, limit)
	if err != nil {
		return 0, fmt.Errorf("delete audit entries of %s: %w", teamID, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
