package storage

import (
	"context"
	"time"
)

// Puppet links a Sandcat user to a Matrix user. FromMatrix tells which side is
// the original: false for a Sandcat user shown on Matrix as a ghost
// (@<prefix><user id>:<server>), true for a Matrix user (or bot) shown in
// Sandcat as a user of its own.
type Puppet struct {
	UserID     string // Sandcat user id
	MXID       string // Matrix user id (@localpart:server)
	FromMatrix bool
	Registered bool   // the ghost exists on the homeserver (/register done)
	Name       string // display name last synced to the other side ("" = never)
	Avatar     string // avatar last synced (Sandcat object name or mxc:// URI; "" = never)
	AvatarMXC  string // the mxc:// URI of the synced avatar on the homeserver ("" = none)
	UpdateTime int64  // unix ms, set by PutPuppet
}

// Portal links a Sandcat group to the Matrix room that bridges it.
type Portal struct {
	GroupID    string // Sandcat group id
	RoomID     string // Matrix room id (!opaque:server)
	Alias      string // #<prefix><group id>:<server>; "" for a plumbed room without our alias
	Plumbed    bool   // an existing Matrix room plumbed into the group (not created by the bridge)
	CreateTime int64  // unix ms, set by CreatePortal when zero
}

// BridgedMessage links a Sandcat message (its server_id) to the Matrix event
// that carries it in a portal room, whichever side it started on.
type BridgedMessage struct {
	ServerID   string // Sandcat server_id
	EventID    string // Matrix event id ($...)
	RoomID     string // Matrix room id
	CreateTime int64  // unix ms, set by AddMessage when zero
}

// AppserviceTxns is the durable dedup state of the homeserver→appservice
// push: processed transaction ids and seen event ids.
type AppserviceTxns interface {
	// TxnDone reports whether MarkTxn was called for txnID.
	TxnDone(ctx context.Context, txnID string) (bool, error)
	// MarkTxn records txnID as processed; alreadyDone is true when it was recorded before.
	MarkTxn(ctx context.Context, txnID string) (alreadyDone bool, err error)
	// SeenEvent reports whether MarkEvent was called for eventID.
	SeenEvent(ctx context.Context, eventID string) (bool, error)
	// MarkEvent records eventID as handled; alreadySeen is true when it was recorded before.
	MarkEvent(ctx context.Context, eventID string) (alreadySeen bool, err error)
	// PruneAppservice forgets transaction and event marks recorded before t
	// and returns how many rows went. Use a horizon far longer than the
	// homeserver's retry window (Synapse retries for hours at most).
	PruneAppservice(ctx context.Context, before time.Time) (int64, error)
}

// Puppets maps Sandcat users to Matrix users (both directions).
type Puppets interface {
	// PutPuppet inserts or replaces the puppet of p.UserID (UpdateTime is set
	// to now). ErrConflict when p.MXID belongs to another Sandcat user.
	PutPuppet(ctx context.Context, p *Puppet) error
	// GetPuppet returns the puppet of a Sandcat user, or ErrNotFound.
	GetPuppet(ctx context.Context, userID string) (*Puppet, error)
	// PuppetByMXID returns the puppet of a Matrix user, or ErrNotFound.
	PuppetByMXID(ctx context.Context, mxid string) (*Puppet, error)
	// DeletePuppet removes the puppet of a Sandcat user, or ErrNotFound.
	DeletePuppet(ctx context.Context, userID string) error
	// StalePuppets returns up to limit Sandcat users with a registered
	// puppet (not FromMatrix) whose users row was updated after the puppet
	// row was last written: their name or avatar may differ from Matrix's.
	// The oldest updates come first.
	StalePuppets(ctx context.Context, limit int) ([]string, error)
}

// Portals maps Sandcat groups to Matrix rooms.
type Portals interface {
	// CreatePortal inserts p. ErrConflict when the group, the room or the
	// (non-empty) alias is already bridged.
	CreatePortal(ctx context.Context, p *Portal) error
	// GetPortal returns the portal of a group, or ErrNotFound.
	GetPortal(ctx context.Context, groupID string) (*Portal, error)
	// PortalByRoom returns the portal of a Matrix room, or ErrNotFound.
	PortalByRoom(ctx context.Context, roomID string) (*Portal, error)
	// PortalByAlias returns the portal with that alias, or ErrNotFound.
	PortalByAlias(ctx context.Context, alias string) (*Portal, error)
	// DeletePortal unbridges a group, or ErrNotFound.
	DeletePortal(ctx context.Context, groupID string) error
}

// BridgedMessages maps Sandcat server_ids to Matrix event ids.
type BridgedMessages interface {
	// AddMessage inserts m. ErrConflict when its server_id or its event id is
	// already mapped.
	AddMessage(ctx context.Context, m *BridgedMessage) error
	// MessageByServerID returns the mapping of a Sandcat message, or ErrNotFound.
	MessageByServerID(ctx context.Context, serverID string) (*BridgedMessage, error)
	// MessageByEventID returns the mapping of a Matrix event, or ErrNotFound.
	MessageByEventID(ctx context.Context, eventID string) (*BridgedMessage, error)
}

// AppserviceStore is everything the Matrix bridge keeps.
type AppserviceStore interface {
	AppserviceTxns
	Puppets
	Portals
	BridgedMessages
}
