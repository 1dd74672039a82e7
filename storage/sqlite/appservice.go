package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.AppserviceStore = (*Appservice)(nil)

// Appservice is the store's storage.AppserviceStore (tables appservice_txns,
// appservice_events, matrix_puppets, matrix_portals, matrix_messages).
type Appservice struct {
	db *sql.DB
}

// Appservice returns the Matrix bridge state kept in this store.
func (s *Store) Appservice() *Appservice { return &Appservice{db: s.db} }

// markOnce inserts key into a (key, time) table and reports whether it was there.
func (a *Appservice) markOnce(ctx context.Context, table, col, tcol, key string) (bool, error) {
	res, err := a.db.ExecContext(ctx, `INSERT INTO `+table+` (`+col+`, `+tcol+`) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		key, time.Now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("sqlite: mark %s %q: %w", table, key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: mark %s %q: %w", table, key, err)
	}
	return n == 0, nil
}

func (a *Appservice) exists(ctx context.Context, table, col, key string) (bool, error) {
	var n int
	if err := a.db.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE `+col+` = ?`, key).Scan(&n); err != nil {
		return false, fmt.Errorf("sqlite: look up %s %q: %w", table, key, err)
	}
	return n > 0, nil
}

// TxnDone implements storage.AppserviceTxns.
func (a *Appservice) TxnDone(ctx context.Context, txnID string) (bool, error) {
	return a.exists(ctx, "appservice_txns", "txn_id", txnID)
}

// MarkTxn implements storage.AppserviceTxns.
func (a *Appservice) MarkTxn(ctx context.Context, txnID string) (bool, error) {
	return a.markOnce(ctx, "appservice_txns", "txn_id", "done_at", txnID)
}

// SeenEvent implements storage.AppserviceTxns.
func (a *Appservice) SeenEvent(ctx context.Context, eventID string) (bool, error) {
	return a.exists(ctx, "appservice_events", "event_id", eventID)
}

// MarkEvent implements storage.AppserviceTxns.
func (a *Appservice) MarkEvent(ctx context.Context, eventID string) (bool, error) {
	return a.markOnce(ctx, "appservice_events", "event_id", "seen_at", eventID)
}

// PruneAppservice implements storage.AppserviceTxns.
func (a *Appservice) PruneAppservice(ctx context.Context, before time.Time) (int64, error) {
	ms := before.UnixMilli()
	var total int64
	for _, q := range []string{
		`DELETE FROM appservice_txns WHERE done_at < ?`,
		`DELETE FROM appservice_events WHERE seen_at < ?`,
	} {
		res, err := a.db.ExecContext(ctx, q, ms)
		if err != nil {
			return total, fmt.Errorf("sqlite: prune appservice marks: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("sqlite: prune appservice marks: %w", err)
		}
		total += n
	}
	return total, nil
}

const puppetCols = `user_id, mxid, from_matrix, registered, name, avatar, avatar_mxc, update_time`

func scanPuppet(row *sql.Row) (*storage.Puppet, error) {
	var p storage.Puppet
	err := row.Scan(&p.UserID, &p.MXID, &p.FromMatrix, &p.Registered, &p.Name, &p.Avatar, &p.AvatarMXC, &p.UpdateTime)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// PutPuppet implements storage.Puppets.
func (a *Appservice) PutPuppet(ctx context.Context, p *storage.Puppet) error {
	p.UpdateTime = time.Now().UnixMilli()
	_, err := a.db.ExecContext(ctx, `INSERT INTO matrix_puppets (`+puppetCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET mxid = excluded.mxid, from_matrix = excluded.from_matrix,
		registered = excluded.registered, name = excluded.name, avatar = excluded.avatar,
		avatar_mxc = excluded.avatar_mxc, update_time = excluded.update_time`,
		p.UserID, p.MXID, p.FromMatrix, p.Registered, p.Name, p.Avatar, p.AvatarMXC, p.UpdateTime)
	if isUserConstraintErr(err) {
		return fmt.Errorf("sqlite: put puppet %s (%s): %w", p.UserID, p.MXID, storage.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: put puppet %s: %w", p.UserID, err)
	}
	return nil
}

// GetPuppet implements storage.Puppets.
func (a *Appservice) GetPuppet(ctx context.Context, userID string) (*storage.Puppet, error) {
	p, err := scanPuppet(a.db.QueryRowContext(ctx, `SELECT `+puppetCols+` FROM matrix_puppets WHERE user_id = ?`, userID))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get puppet %s: %w", userID, err)
	}
	return p, nil
}

// StalePuppets implements storage.Puppets.
func (a *Appservice) StalePuppets(ctx context.Context, limit int) ([]string, error) {
	rows, err := a.db.QueryContext(ctx, `SELECT p.user_id FROM matrix_puppets p JOIN users u ON u.id = p.user_id
		WHERE p.from_matrix = 0 AND p.registered = 1 AND u.update_time > p.update_time
		ORDER BY u.update_time, p.user_id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: stale puppets: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: stale puppets: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: stale puppets: %w", err)
	}
	return out, nil
}

// PuppetByMXID implements storage.Puppets.
func (a *Appservice) PuppetByMXID(ctx context.Context, mxid string) (*storage.Puppet, error) {
	p, err := scanPuppet(a.db.QueryRowContext(ctx, `SELECT `+puppetCols+` FROM matrix_puppets WHERE mxid = ?`, mxid))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get puppet %s: %w", mxid, err)
	}
	return p, nil
}

// DeletePuppet implements storage.Puppets.
func (a *Appservice) DeletePuppet(ctx context.Context, userID string) error {
	return a.deleteOne(ctx, "matrix_puppets", "user_id", userID)
}

func (a *Appservice) deleteOne(ctx context.Context, table, col, key string) error {
	res, err := a.db.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+col+` = ?`, key)
	if err != nil {
		return fmt.Errorf("sqlite: delete %s %s: %w", table, key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: delete %s %s: %w", table, key, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: delete %s %s: %w", table, key, storage.ErrNotFound)
	}
	return nil
}

const portalCols = `group_id, room_id, alias, plumbed, create_time`

// CreatePortal implements storage.Portals.
func (a *Appservice) CreatePortal(ctx context.Context, p *storage.Portal) error {
	if p.CreateTime == 0 {
		p.CreateTime = time.Now().UnixMilli()
	}
	_, err := a.db.ExecContext(ctx, `INSERT INTO matrix_portals (`+portalCols+`) VALUES (?, ?, ?, ?, ?)`,
		p.GroupID, p.RoomID, p.Alias, p.Plumbed, p.CreateTime)
	if isUserConstraintErr(err) {
		return fmt.Errorf("sqlite: create portal %s (%s): %w", p.GroupID, p.RoomID, storage.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create portal %s: %w", p.GroupID, err)
	}
	return nil
}

func (a *Appservice) portalBy(ctx context.Context, col, key string) (*storage.Portal, error) {
	var p storage.Portal
	err := a.db.QueryRowContext(ctx, `SELECT `+portalCols+` FROM matrix_portals WHERE `+col+` = ?`, key).
		Scan(&p.GroupID, &p.RoomID, &p.Alias, &p.Plumbed, &p.CreateTime)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get portal %s: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get portal %s: %w", key, err)
	}
	return &p, nil
}

// GetPortal implements storage.Portals.
func (a *Appservice) GetPortal(ctx context.Context, groupID string) (*storage.Portal, error) {
	return a.portalBy(ctx, "group_id", groupID)
}

// PortalByRoom implements storage.Portals.
func (a *Appservice) PortalByRoom(ctx context.Context, roomID string) (*storage.Portal, error) {
	return a.portalBy(ctx, "room_id", roomID)
}

// PortalByAlias implements storage.Portals.
func (a *Appservice) PortalByAlias(ctx context.Context, alias string) (*storage.Portal, error) {
	if alias == "" {
		return nil, fmt.Errorf("sqlite: get portal by empty alias: %w", storage.ErrNotFound)
	}
	return a.portalBy(ctx, "alias", alias)
}

// DeletePortal implements storage.Portals.
func (a *Appservice) DeletePortal(ctx context.Context, groupID string) error {
	return a.deleteOne(ctx, "matrix_portals", "group_id", groupID)
}

const messageCols = `server_id, event_id, room_id, create_time`

// AddMessage implements storage.BridgedMessages.
func (a *Appservice) AddMessage(ctx context.Context, m *storage.BridgedMessage) error {
	if m.CreateTime == 0 {
		m.CreateTime = time.Now().UnixMilli()
	}
	_, err := a.db.ExecContext(ctx, `INSERT INTO matrix_messages (`+messageCols+`) VALUES (?, ?, ?, ?)`,
		m.ServerID, m.EventID, m.RoomID, m.CreateTime)
	if isUserConstraintErr(err) {
		return fmt.Errorf("sqlite: add bridged message %s (%s): %w", m.ServerID, m.EventID, storage.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: add bridged message %s: %w", m.ServerID, err)
	}
	return nil
}

func (a *Appservice) messageBy(ctx context.Context, col, key string) (*storage.BridgedMessage, error) {
	var m storage.BridgedMessage
	err := a.db.QueryRowContext(ctx, `SELECT `+messageCols+` FROM matrix_messages WHERE `+col+` = ?`, key).
		Scan(&m.ServerID, &m.EventID, &m.RoomID, &m.CreateTime)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get bridged message %s: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get bridged message %s: %w", key, err)
	}
	return &m, nil
}

// MessageByServerID implements storage.BridgedMessages.
func (a *Appservice) MessageByServerID(ctx context.Context, serverID string) (*storage.BridgedMessage, error) {
	return a.messageBy(ctx, "server_id", serverID)
}

// MessageByEventID implements storage.BridgedMessages.
func (a *Appservice) MessageByEventID(ctx context.Context, eventID string) (*storage.BridgedMessage, error) {
	return a.messageBy(ctx, "event_id", eventID)
}
