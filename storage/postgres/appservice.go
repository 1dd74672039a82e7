package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.AppserviceStore = (*Appservice)(nil)

// Appservice is the store's storage.AppserviceStore (tables appservice_txns,
// appservice_events, matrix_puppets, matrix_portals, matrix_messages).
type Appservice struct {
	pool *pgxpool.Pool
}

// Appservice returns the Matrix bridge state kept in this store.
func (s *Store) Appservice() *Appservice { return &Appservice{pool: s.pool} }

// markOnce inserts key into a (key, time) table and reports whether it was there.
func (a *Appservice) markOnce(ctx context.Context, table, col, tcol, key string) (bool, error) {
	tag, err := a.pool.Exec(ctx, `INSERT INTO `+table+` (`+col+`, `+tcol+`) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		key, time.Now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("postgres: mark %s %q: %w", table, key, err)
	}
	return tag.RowsAffected() == 0, nil
}

func (a *Appservice) exists(ctx context.Context, table, col, key string) (bool, error) {
	var ok bool
	if err := a.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE `+col+` = $1)`, key).Scan(&ok); err != nil {
		return false, fmt.Errorf("postgres: look up %s %q: %w", table, key, err)
	}
	return ok, nil
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
		`DELETE FROM appservice_txns WHERE done_at < $1`,
		`DELETE FROM appservice_events WHERE seen_at < $1`,
	} {
		tag, err := a.pool.Exec(ctx, q, ms)
		if err != nil {
			return total, fmt.Errorf("postgres: prune appservice marks: %w", err)
		}
		total += tag.RowsAffected()
	}
	return total, nil
}

const puppetCols = `user_id, mxid, from_matrix, registered, name, avatar, avatar_mxc, update_time`

// PutPuppet implements storage.Puppets.
func (a *Appservice) PutPuppet(ctx context.Context, p *storage.Puppet) error {
	p.UpdateTime = time.Now().UnixMilli()
	_, err := a.pool.Exec(ctx, `INSERT INTO matrix_puppets (`+puppetCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (user_id) DO UPDATE SET mxid = EXCLUDED.mxid, from_matrix = EXCLUDED.from_matrix,
		registered = EXCLUDED.registered, name = EXCLUDED.name, avatar = EXCLUDED.avatar,
		avatar_mxc = EXCLUDED.avatar_mxc, update_time = EXCLUDED.update_time`,
		p.UserID, p.MXID, p.FromMatrix, p.Registered, p.Name, p.Avatar, p.AvatarMXC, p.UpdateTime)
	if isUserUniqueViolation(err) {
		return fmt.Errorf("postgres: put puppet %s (%s): %w", p.UserID, p.MXID, storage.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("postgres: put puppet %s: %w", p.UserID, err)
	}
	return nil
}

func (a *Appservice) puppetBy(ctx context.Context, col, key string) (*storage.Puppet, error) {
	var p storage.Puppet
	err := a.pool.QueryRow(ctx, `SELECT `+puppetCols+` FROM matrix_puppets WHERE `+col+` = $1`, key).
		Scan(&p.UserID, &p.MXID, &p.FromMatrix, &p.Registered, &p.Name, &p.Avatar, &p.AvatarMXC, &p.UpdateTime)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: get puppet %s: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get puppet %s: %w", key, err)
	}
	return &p, nil
}

// GetPuppet implements storage.Puppets.
func (a *Appservice) GetPuppet(ctx context.Context, userID string) (*storage.Puppet, error) {
	return a.puppetBy(ctx, "user_id", userID)
}

// StalePuppets implements storage.Puppets.
func (a *Appservice) StalePuppets(ctx context.Context, limit int) ([]string, error) {
	rows, err := a.pool.Query(ctx, `SELECT p.user_id FROM matrix_puppets p JOIN users u ON u.id = p.user_id
		WHERE NOT p.from_matrix AND p.registered AND u.update_time > p.update_time
		ORDER BY u.update_time, p.user_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: stale puppets: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: stale puppets: %w", err)
	}
	return ids, nil
}

// PuppetByMXID implements storage.Puppets.
func (a *Appservice) PuppetByMXID(ctx context.Context, mxid string) (*storage.Puppet, error) {
	return a.puppetBy(ctx, "mxid", mxid)
}

// DeletePuppet implements storage.Puppets.
func (a *Appservice) DeletePuppet(ctx context.Context, userID string) error {
	return a.deleteOne(ctx, "matrix_puppets", "user_id", userID)
}

func (a *Appservice) deleteOne(ctx context.Context, table, col, key string) error {
	tag, err := a.pool.Exec(ctx, `DELETE FROM `+table+` WHERE `+col+` = $1`, key)
	if err != nil {
		return fmt.Errorf("postgres: delete %s %s: %w", table, key, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete %s %s: %w", table, key, storage.ErrNotFound)
	}
	return nil
}

const portalCols = `group_id, room_id, alias, plumbed, create_time`

// CreatePortal implements storage.Portals.
func (a *Appservice) CreatePortal(ctx context.Context, p *storage.Portal) error {
	if p.CreateTime == 0 {
		p.CreateTime = time.Now().UnixMilli()
	}
	_, err := a.pool.Exec(ctx, `INSERT INTO matrix_portals (`+portalCols+`) VALUES ($1, $2, $3, $4, $5)`,
		p.GroupID, p.RoomID, p.Alias, p.Plumbed, p.CreateTime)
	if isUserUniqueViolation(err) {
		return fmt.Errorf("postgres: create portal %s (%s): %w", p.GroupID, p.RoomID, storage.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("postgres: create portal %s: %w", p.GroupID, err)
	}
	return nil
}

func (a *Appservice) portalBy(ctx context.Context, col, key string) (*storage.Portal, error) {
	var p storage.Portal
	err := a.pool.QueryRow(ctx, `SELECT `+portalCols+` FROM matrix_portals WHERE `+col+` = $1`, key).
		Scan(&p.GroupID, &p.RoomID, &p.Alias, &p.Plumbed, &p.CreateTime)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: get portal %s: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get portal %s: %w", key, err)
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
		return nil, fmt.Errorf("postgres: get portal by empty alias: %w", storage.ErrNotFound)
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
	_, err := a.pool.Exec(ctx, `INSERT INTO matrix_messages (`+messageCols+`) VALUES ($1, $2, $3, $4)`,
		m.ServerID, m.EventID, m.RoomID, m.CreateTime)
	if isUserUniqueViolation(err) {
		return fmt.Errorf("postgres: add bridged message %s (%s): %w", m.ServerID, m.EventID, storage.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("postgres: add bridged message %s: %w", m.ServerID, err)
	}
	return nil
}

func (a *Appservice) messageBy(ctx context.Context, col, key string) (*storage.BridgedMessage, error) {
	var m storage.BridgedMessage
	err := a.pool.QueryRow(ctx, `SELECT `+messageCols+` FROM matrix_messages WHERE `+col+` = $1`, key).
		Scan(&m.ServerID, &m.EventID, &m.RoomID, &m.CreateTime)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: get bridged message %s: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get bridged message %s: %w", key, err)
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
