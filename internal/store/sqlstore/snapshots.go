package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// snapshotColumns are the columns scanSnapshot reads, in its order.
const snapshotColumns = `id, team_id, name, capsule_id, host_id, status, error, template,
	vcpus, memory_mb, disk_mb, internet, allow_out, deny_out, env_vars, size_bytes,
	envd_version, template_name, created_at, updated_at, pool_size`

const snapshotColumnCount = 21

// CreateSnapshotWithin inserts sn if the team's snapshots and disk stay
// within its limits, under the team's row lock (see CreateCapsuleWithin).
// The name's unique index makes a taken name ErrAlreadyExists.
func (s *Store) CreateSnapshotWithin(ctx context.Context, sn store.Snapshot, q store.Quota) error {
	if sn.Status == "" {
		return errdefs.Invalid("create snapshot %s: no status", sn.ID)
	}
	d := &s.d
	err := s.inTx(ctx, func(tx conn) error {
		l, u, err := s.lockUsage(ctx, tx, sn.TeamID)
		if err != nil {
			return err
		}
		if err := l.Apply(q).AdmitSnapshot(sn.TeamID, u, sn); err != nil {
			return err
		}
		_, err = tx.exec(ctx, "INSERT INTO snapshots ("+snapshotColumns+") VALUES ("+placeholders(snapshotColumnCount)+")",
			sn.ID, sn.TeamID, sn.Name, sn.CapsuleID, sn.HostID, string(sn.Status), sn.Error, sn.Template,
			sn.VCPUs, sn.MemoryMB, sn.DiskMB, sn.Internet, formatList(sn.AllowOut), formatList(sn.DenyOut),
			formatMap(sn.EnvVars), sn.SizeBytes, sn.EnvdVersion, sn.TemplateName,
			d.time(sn.CreatedAt), d.time(sn.UpdatedAt), sn.PoolSize)
		if errors.Is(err, errdefs.ErrAlreadyExists) && sn.Name != "" {
			return errdefs.AlreadyExists("team %s has a snapshot named %q (or the ID is taken)", sn.TeamID, sn.Name)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create snapshot %s: %w", sn.ID, err)
	}
	return nil
}

// GetSnapshot returns the snapshot with id.
func (s *Store) GetSnapshot(ctx context.Context, id string) (store.Snapshot, error) {
	sn, err := getSnapshot(ctx, s.reader(), id, "")
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("get snapshot %s: %w", id, err)
	}
	return sn, nil
}

func getSnapshot(ctx context.Context, c conn, id, lock string) (store.Snapshot, error) {
	sn, err := scanSnapshot(c.d, c.row(ctx, "SELECT "+snapshotColumns+" FROM snapshots WHERE id = ? "+lock, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Snapshot{}, errdefs.NotFound("snapshot %s not found", id)
	}
	return sn, c.d.Kind(err)
}

func scanSnapshot(d *Dialect, row scanner) (store.Snapshot, error) {
	var sn store.Snapshot
	err := row.Scan(&sn.ID, &sn.TeamID, &sn.Name, &sn.CapsuleID, &sn.HostID, &sn.Status, &sn.Error, &sn.Template,
		&sn.VCPUs, &sn.MemoryMB, &sn.DiskMB, &sn.Internet, listCol{&sn.AllowOut}, listCol{&sn.DenyOut},
		mapCol{&sn.EnvVars}, &sn.SizeBytes, &sn.EnvdVersion, &sn.TemplateName,
		d.timeCol(&sn.CreatedAt), d.timeCol(&sn.UpdatedAt), &sn.PoolSize)
	return sn, err
}

// ListSnapshots returns the snapshots that match f, newest first (by
// created_at, then ID, both descending), with the cursor of the next page.
// The cursor has ListCapsules' form; one ListSnapshots did not make is
// ErrInvalid, as is a negative limit.
func (s *Store) ListSnapshots(ctx context.Context, f store.SnapshotFilter) ([]store.Snapshot, string, error) {
	limit, err := pageLimit("list snapshots", f.Limit)
	if err != nil {
		return nil, "", err
	}
	var where []string
	var args []any
	for _, eq := range []struct{ col, v string }{
		{"team_id", f.TeamID}, {"capsule_id", f.CapsuleID}, {"host_id", f.HostID}, {"name", f.Name}, {"template_name", f.TemplateName},
	} {
		if eq.v != "" {
			where = append(where, eq.col+" = ?")
			args = append(args, eq.v)
		}
	}
	if len(f.Statuses) > 0 {
		where = append(where, "status IN ("+placeholders(len(f.Statuses))+")")
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	return page[store.Snapshot]{
		what: "list snapshots", columns: snapshotColumns, table: "snapshots", where: where, args: args,
		cursor: f.Cursor, limit: limit,
		scan: func(row scanner) (store.Snapshot, error) { return scanSnapshot(&s.d, row) },
		key:  func(sn store.Snapshot) (time.Time, string) { return sn.CreatedAt, sn.ID },
	}.list(ctx, s)
}

// UpdateSnapshot is a compare-and-set of the snapshot's status: the
// UPDATE's WHERE states the statuses it moves from (and, for a change to
// deleting, that no template uses the snapshot); no row changed means a
// conflict, reported with the row as it is.
func (s *Store) UpdateSnapshot(ctx context.Context, id string, from []nestbox.SnapshotStatus, u store.SnapshotUpdate) (store.Snapshot, error) {
	if u.To == "" || len(from) == 0 {
		return store.Snapshot{}, errdefs.Invalid("update snapshot %s: want a status to move from and to", id)
	}
	at := u.At
	if at.IsZero() {
		at = time.Now()
	}
	set := []string{"status = ?", "updated_at = ?"}
	args := []any{string(u.To), s.d.time(at)}
	if u.Error != "" || u.To == nestbox.SnapshotError {
		set = append(set, "error = ?")
		args = append(args, u.Error)
	}
	if u.SizeBytes > 0 {
		set = append(set, "size_bytes = ?")
		args = append(args, u.SizeBytes)
	}
	if u.DiskMB > 0 {
		set = append(set, "disk_mb = ?")
		args = append(args, u.DiskMB)
	}
	if u.EnvdVersion != "" {
		set = append(set, "envd_version = ?")
		args = append(args, u.EnvdVersion)
	}
	query := "UPDATE snapshots SET " + strings.Join(set, ", ") + " WHERE id = ? AND status IN (" + placeholders(len(from)) + ")"
	args = append(args, id)
	for _, st := range from {
		args = append(args, string(st))
	}
	if u.To == nestbox.SnapshotDeleting {
		query += " AND template_name = ''"
	}
	out, err := scanSnapshot(&s.d, s.writer().row(ctx, query+" RETURNING "+snapshotColumns, args...))
	if err == nil {
		return out, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.Snapshot{}, fmt.Errorf("update snapshot %s: %w", id, s.d.Kind(err))
	}
	cur, err := s.GetSnapshot(ctx, id)
	if err != nil {
		return store.Snapshot{}, err
	}
	if !slices.Contains(from, cur.Status) {
		return cur, errdefs.Conflict("snapshot %s is %s, not %v", id, cur.Status, from)
	}
	return cur, errdefs.Conflict("snapshot %s backs template %q: delete the template first", id, cur.TemplateName)
}

// SetSnapshotTemplate sets the snapshot's template_name, only while it is
// ready when name is set; the unique index refuses a name the team has.
func (s *Store) SetSnapshotTemplate(ctx context.Context, id, name string) error {
	query := "UPDATE snapshots SET template_name = ? WHERE id = ?"
	if name != "" {
		query += " AND status = 'ready'"
	} else {
		// A snapshot that backs no template has no pool.
		query = "UPDATE snapshots SET template_name = ?, pool_size = 0 WHERE id = ?"
	}
	ok, err := s.execOne(ctx, query, name, id)
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return errdefs.AlreadyExists("template %q exists", name)
	}
	if err != nil {
		return fmt.Errorf("set template of snapshot %s: %w", id, err)
	}
	if ok {
		return nil
	}
	cur, err := s.GetSnapshot(ctx, id)
	if err != nil {
		return err
	}
	return errdefs.Conflict("snapshot %s is %s, not ready", id, cur.Status)
}

// SetSnapshotPool sets the pool size of a snapshot that backs a template,
// under its team's row lock, if the pools of the team's templates stay
// within limit sandboxes together (errdefs.ErrExhausted otherwise; 0
// is no cap). A snapshot that backs no template is errdefs.ErrConflict.
func (s *Store) SetSnapshotPool(ctx context.Context, id string, size, limit int) error {
	err := s.inTx(ctx, func(tx conn) error {
		sn, err := getSnapshot(ctx, tx, id, "")
		if err != nil {
			return err
		}
		var id2 string
		if err := tx.row(ctx, "SELECT id FROM teams WHERE id = ? "+s.d.RowLock, sn.TeamID).Scan(&id2); err != nil {
			return fmt.Errorf("lock team %s: %w", sn.TeamID, s.d.Kind(err))
		}
		var others int
		if err := tx.row(ctx, "SELECT COALESCE(SUM(pool_size), 0) FROM snapshots WHERE team_id = ? AND id <> ?", sn.TeamID, id).Scan(&others); err != nil {
			return s.d.Kind(err)
		}
		if limit > 0 && size > 0 && others+size > limit {
			return fmt.Errorf("the team's template pools would hold %d sandboxes, more than its %d: %w", others+size, limit, errdefs.ErrExhausted)
		}
		res, err := tx.exec(ctx, "UPDATE snapshots SET pool_size = ? WHERE id = ? AND template_name <> '' AND status = 'ready'", size, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return errdefs.Conflict("snapshot %s backs no template (or is not ready)", id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set the pool of snapshot %s: %w", id, err)
	}
	return nil
}

// DeleteSnapshot deletes the row unless a template uses it.
func (s *Store) DeleteSnapshot(ctx context.Context, id string) error {
	ok, err := s.execOne(ctx, "DELETE FROM snapshots WHERE id = ? AND template_name = ''", id)
	if err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	if ok {
		return nil
	}
	cur, err := s.GetSnapshot(ctx, id)
	if err != nil {
		return err
	}
	return errdefs.Conflict("snapshot %s backs template %q: delete the template first", id, cur.TemplateName)
}
