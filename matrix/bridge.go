package matrix

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
)

// Config is the Matrix side of the bridge (the `appservice` config section).
type Config struct {
	HomeserverURL string // client-server API base of the homeserver
	ServerName    string // the homeserver's server name (after ':' in user ids)
	ASToken       string // as_token of the registration
	BotLocalpart  string // sender_localpart of the registration
	UserPrefix    string // localpart prefix of Sandcat puppets
	AliasPrefix   string // alias localpart prefix of portals
	SeqStep       int64  // seq ceiling step given to CreateUser for Matrix users
	// MaxFileSize bounds a file or avatar copied between the blob store and
	// the homeserver's media repository; 0 = 50 MiB (the /file limit).
	MaxFileSize int64
	// HTTPClient calls the homeserver; nil = a client with a 60 s timeout.
	HTTPClient *http.Client
}

// Store is the bridge's own state (storage.AppserviceStore provides it).
type Store interface {
	storage.Puppets
	storage.Portals
	storage.BridgedMessages
}

// Users is what the bridge needs of the users store.
type Users interface {
	GetUser(ctx context.Context, id string) (*storage.User, error)
	CreateUser(ctx context.Context, u *storage.User, seqStep int64) error
	UpdateUser(ctx context.Context, u *storage.UserUpdate, now int64) (*storage.User, error)
}

// Groups is what the bridge needs of the groups store.
type Groups interface {
	GetGroup(ctx context.Context, groupID string) (wire.GroupInfo, error)
	GroupMemberIDs(ctx context.Context, groupID string) ([]string, error)
	GroupMemberRole(ctx context.Context, groupID, userID string) (int32, error)
	AddGroupMembers(ctx context.Context, groupID string, userIDs []string) ([]string, error)
	ExitGroup(ctx context.Context, groupID, userID string) error
	UpdateGroup(ctx context.Context, u storage.GroupUpdate) (wire.GroupInfo, bool, error)
}

// Sender puts a message into the Sandcat pipeline (msgserver.NoticeSender:
// server_id, send_time and seqs assigned, durable on return). SendKeyed
// derives the server_id from an idempotency key (a Matrix event id), and
// the pipeline stores a message of that server_id once: a retry after a
// crash between the send and the bridge's own bookkeeping duplicates nothing.
type Sender interface {
	Send(ctx context.Context, m *wire.Msg, to []string) error
	SendKeyed(ctx context.Context, m *wire.Msg, to []string, key string) error
}

// MemberCache is the group-member cache to invalidate when the bridge adds
// a member (optional).
type MemberCache interface {
	Invalidate(groupID string)
}

// Options are the inputs of New.
type Options struct {
	Config  Config
	Store   Store
	Users   Users
	Groups  Groups
	Sender  Sender
	Members MemberCache // may be nil
	// Blobs is the store behind /file: media and avatars are copied between
	// it and the homeserver's media repository.
	Blobs blob.Store
	Log   *slog.Logger
}

// Bridge is the Sandcat ⇄ Matrix bridge logic.
type Bridge struct {
	cfg     Config
	store   Store
	users   Users
	groups  Groups
	sender  Sender
	members MemberCache
	blobs   blob.Store
	log     *slog.Logger
	bot     *mautrix.Client
	botID   id.UserID

	portalMu sync.Mutex // serialises portal creation
	media    mediaCache // uploads by object name (media.go)

	mu      sync.Mutex
	clients map[id.UserID]*mautrix.Client
	joined  map[joinKey]bool // puppets known to be joined to a room
}

type joinKey struct {
	room id.RoomID
	user id.UserID
}

// New returns a Bridge.
func New(o Options) (*Bridge, error) {
	c := o.Config
	switch {
	case c.HomeserverURL == "" || c.ServerName == "" || c.ASToken == "":
		return nil, errors.New("matrix: homeserver_url, homeserver_name and as_token are required")
	case c.BotLocalpart == "" || c.UserPrefix == "" || c.AliasPrefix == "":
		return nil, errors.New("matrix: sender_localpart, user_prefix and alias_prefix are required")
	case o.Store == nil || o.Users == nil || o.Groups == nil || o.Sender == nil || o.Blobs == nil:
		return nil, errors.New("matrix: store, users, groups, sender and blobs are required")
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = 50 << 20
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	b := &Bridge{
		cfg: c, store: o.Store, users: o.Users, groups: o.Groups, sender: o.Sender, members: o.Members, blobs: o.Blobs,
		log:     log.With("component", "matrix"),
		botID:   id.NewUserID(c.BotLocalpart, c.ServerName),
		clients: make(map[id.UserID]*mautrix.Client),
		joined:  make(map[joinKey]bool),
	}
	bot, err := b.newClient(b.botID, false)
	if err != nil {
		return nil, err
	}
	b.bot = bot
	return b, nil
}

func (b *Bridge) newClient(user id.UserID, assert bool) (*mautrix.Client, error) {
	cli, err := mautrix.NewClient(b.cfg.HomeserverURL, user, b.cfg.ASToken)
	if err != nil {
		return nil, fmt.Errorf("matrix: client: %w", err)
	}
	cli.Client = b.cfg.HTTPClient
	cli.SetAppServiceUserID = assert
	return cli, nil
}

// client returns the client acting as user (identity assertion with the
// as_token).
func (b *Bridge) client(user id.UserID) (*mautrix.Client, error) {
	if user == b.botID {
		return b.bot, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.clients[user]; ok {
		return c, nil
	}
	c, err := b.newClient(user, true)
	if err != nil {
		return nil, err
	}
	b.clients[user] = c
	return c, nil
}

// BotID is the bridge bot's Matrix user id.
func (b *Bridge) BotID() id.UserID { return b.botID }

// PuppetID is the Matrix user id of a Sandcat user's puppet.
func (b *Bridge) PuppetID(userID string) id.UserID {
	return id.NewUserID(b.cfg.UserPrefix+id.EncodeUserLocalpart(userID), b.cfg.ServerName)
}

// PortalAlias is the alias of a Sandcat group's portal.
func (b *Bridge) PortalAlias(groupID string) id.RoomAlias {
	return id.NewRoomAlias(b.cfg.AliasPrefix+id.EncodeUserLocalpart(groupID), b.cfg.ServerName)
}

// puppetUserID returns the Sandcat user id of a puppet's Matrix id.
func (b *Bridge) puppetUserID(mxid id.UserID) (string, bool) {
	local, server, err := mxid.Parse()
	if err != nil || server != b.cfg.ServerName {
		return "", false
	}
	enc, ok := strings.CutPrefix(local, b.cfg.UserPrefix)
	if !ok || enc == "" {
		return "", false
	}
	uid, err := id.DecodeUserLocalpart(enc)
	return uid, err == nil
}

// aliasGroupID returns the group id of a portal alias.
func (b *Bridge) aliasGroupID(alias id.RoomAlias) (string, bool) {
	s, ok := strings.CutPrefix(string(alias), "#")
	if !ok {
		return "", false
	}
	local, server, ok := strings.Cut(s, ":")
	if !ok || server != b.cfg.ServerName {
		return "", false
	}
	enc, ok := strings.CutPrefix(local, b.cfg.AliasPrefix)
	if !ok || enc == "" {
		return "", false
	}
	gid, err := id.DecodeUserLocalpart(enc)
	return gid, err == nil
}

// ours tells whether a Matrix user is the bot or in the puppet namespace:
// its events are the bridge's own echoes.
func (b *Bridge) ours(mxid id.UserID) bool {
	if mxid == b.botID {
		return true
	}
	local, server, err := mxid.Parse()
	return err == nil && server == b.cfg.ServerName && strings.HasPrefix(local, b.cfg.UserPrefix)
}

// Start registers the bot on the homeserver (Synapse already creates it; a
// homeserver that does not is served here).
func (b *Bridge) Start(ctx context.Context) error {
	// The as_token names the appservice's bot: a homeserver that knows it
	// under another id was given a registration for another server name.
	who, err := b.bot.Whoami(ctx)
	switch {
	case err == nil && who.UserID != b.botID:
		return fmt.Errorf("matrix: the homeserver knows the bridge bot as %s, the config says %s: "+
			"homeserver_name or sender_localpart is wrong (regenerate the registration with the homeserver's server_name)",
			who.UserID, b.botID)
	case err != nil && misconfigured(err):
		return fmt.Errorf("matrix: the homeserver refuses the as_token (is the registration loaded, with the same as_token?): %w", err)
	case err != nil && unreachable(err):
		return fmt.Errorf("matrix: cannot reach the homeserver at appservice.homeserver_url %q: %w", b.cfg.HomeserverURL, err)
	}
	if err := b.register(ctx, b.cfg.BotLocalpart); err != nil {
		return fmt.Errorf("matrix: register the bridge bot %s: %w", b.botID, err)
	}
	return nil
}

// register creates a user of the namespace with the as_token (no password,
// no device). An existing user is fine.
func (b *Bridge) register(ctx context.Context, localpart string) error {
	_, _, err := b.bot.Register(ctx, &mautrix.ReqRegister[any]{
		Username: localpart, Type: mautrix.AuthTypeAppservice, InhibitLogin: true,
	})
	if err != nil && !errors.Is(err, mautrix.MUserInUse) {
		return err
	}
	return nil
}

// ensurePuppet registers (once) the puppet of a Sandcat user and keeps its
// display name equal to the user's name and its avatar to the user's avatar
// (puppetAvatar). It returns the puppet's id.
func (b *Bridge) ensurePuppet(ctx context.Context, userID string) (id.UserID, error) {
	return b.syncPuppet(ctx, userID, false)
}

// syncPuppet is ensurePuppet; with touch, the puppet row is written even
// when nothing changed (the profile sync marks it synced as of now).
func (b *Bridge) syncPuppet(ctx context.Context, userID string, touch bool) (id.UserID, error) {
	u, err := b.users.GetUser(ctx, userID)
	if err != nil {
		return "", fmt.Errorf("matrix: puppet of %s: %w", userID, err)
	}
	mxid := b.PuppetID(userID)
	p, err := b.store.GetPuppet(ctx, userID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		p = &storage.Puppet{UserID: userID, MXID: mxid.String()}
	case err != nil:
		return "", err
	}
	if p.FromMatrix {
		return id.UserID(p.MXID), nil
	}
	if p.Registered && p.Name == u.Name && p.Avatar == u.Avatar && !touch {
		return mxid, nil
	}
	if !p.Registered {
		local, _, _ := mxid.Parse()
		if err := b.register(ctx, local); err != nil {
			return "", fmt.Errorf("matrix: register puppet %s: %w", mxid, err)
		}
		p.Registered = true
	}
	if p.Name != u.Name {
		cli, err := b.client(mxid)
		if err != nil {
			return "", err
		}
		if err := cli.SetDisplayName(ctx, u.Name); err != nil {
			return "", fmt.Errorf("matrix: display name of %s: %w", mxid, err)
		}
		p.Name = u.Name
	}
	if p.Avatar != u.Avatar {
		if err := b.puppetAvatar(ctx, mxid, p, u.Avatar); err != nil {
			return "", err
		}
	}
	if err := b.store.PutPuppet(ctx, p); err != nil {
		return "", fmt.Errorf("matrix: store puppet %s: %w", mxid, err)
	}
	return mxid, nil
}

// ensureJoined makes user a member of room: a join, and on refusal an
// invite by the bot then a join.
func (b *Bridge) ensureJoined(ctx context.Context, room id.RoomID, user id.UserID) (*mautrix.Client, error) {
	cli, err := b.client(user)
	if err != nil {
		return nil, err
	}
	k := joinKey{room, user}
	b.mu.Lock()
	done := b.joined[k]
	b.mu.Unlock()
	if done {
		return cli, nil
	}
	if _, err := cli.JoinRoomByID(ctx, room); err != nil {
		if !errors.Is(err, mautrix.MForbidden) {
			return nil, fmt.Errorf("matrix: %s joins %s: %w", user, room, err)
		}
		if _, err := b.bot.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: user}); err != nil {
			return nil, fmt.Errorf("matrix: invite %s to %s: %w", user, room, err)
		}
		if _, err := cli.JoinRoomByID(ctx, room); err != nil {
			return nil, fmt.Errorf("matrix: %s joins %s after the invite: %w", user, room, err)
		}
	}
	b.mu.Lock()
	b.joined[k] = true
	b.mu.Unlock()
	return cli, nil
}

// EnsurePortal returns the portal of a group, creating the Matrix room (by
// the bot, private, invite only, named after the group, with the group's
// alias) when the group has none.
func (b *Bridge) EnsurePortal(ctx context.Context, groupID string) (*storage.Portal, error) {
	if p, err := b.store.GetPortal(ctx, groupID); err == nil {
		return p, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	b.portalMu.Lock()
	defer b.portalMu.Unlock()
	if p, err := b.store.GetPortal(ctx, groupID); err == nil {
		return p, nil
	}
	g, err := b.groups.GetGroup(ctx, groupID)
	if err != nil {
		return nil, fmt.Errorf("matrix: portal of group %s: %w", groupID, err)
	}
	alias := b.PortalAlias(groupID)
	aliasLocal, _, _ := strings.Cut(strings.TrimPrefix(string(alias), "#"), ":")
	topic := g.Announcement
	if topic == "" {
		topic = g.Description
	}
	var room id.RoomID
	resp, err := b.bot.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Visibility: "private", Preset: "private_chat", RoomAliasName: aliasLocal, Name: g.Name, Topic: topic,
	})
	switch {
	case err == nil:
		room = resp.RoomID
	case errors.Is(err, mautrix.MRoomInUse):
		// Created before a crash that lost the portal row: take it back.
		r, rerr := b.bot.ResolveAlias(ctx, alias)
		if rerr != nil {
			return nil, fmt.Errorf("matrix: alias %s taken but not resolved: %w", alias, rerr)
		}
		room = r.RoomID
	default:
		return nil, fmt.Errorf("matrix: create the portal of group %s: %w", groupID, err)
	}
	p := &storage.Portal{GroupID: groupID, RoomID: room.String(), Alias: alias.String()}
	if err := b.store.CreatePortal(ctx, p); err != nil {
		return nil, fmt.Errorf("matrix: store the portal of group %s: %w", groupID, err)
	}
	b.log.Info("portal created", "group_id", groupID, "room_id", room, "alias", alias)
	b.setBridgeState(ctx, p, g.Name)
	b.portalAvatar(ctx, p, g.Avatar)
	if err := b.joinMembers(ctx, p); err != nil {
		// Members not joined now join when they first speak.
		b.log.Warn("member puppets not joined to the new portal", "group_id", groupID, "err", err)
	}
	return p, nil
}

// InviteMatrixUser bridges a group (when not yet) and invites a Matrix user
// or bot into its portal. Once it joins, it becomes a member of the group.
func (b *Bridge) InviteMatrixUser(ctx context.Context, groupID string, mxid id.UserID) (*storage.Portal, error) {
	if _, _, err := mxid.Parse(); err != nil || b.ours(mxid) {
		return nil, fmt.Errorf("%w: %q", ErrBadMXID, mxid)
	}
	p, err := b.EnsurePortal(ctx, groupID)
	if err != nil {
		return nil, err
	}
	_, err = b.bot.InviteUser(ctx, id.RoomID(p.RoomID), &mautrix.ReqInviteUser{UserID: mxid})
	if err != nil && !isAlreadyInRoom(err) {
		return nil, fmt.Errorf("matrix: invite %s to %s: %w", mxid, p.RoomID, err)
	}
	return p, nil
}

// ErrBadMXID is wrapped by InviteMatrixUser for an id that is not a Matrix
// user id, or one of the bridge's own users.
var ErrBadMXID = errors.New("matrix: not a Matrix user id of another user")

// isAlreadyInRoom: Synapse answers 403 "… is already in the room." to an
// invite of a member.
func isAlreadyInRoom(err error) bool {
	var he mautrix.HTTPError
	return errors.As(err, &he) && he.RespError != nil && he.RespError.ErrCode == mautrix.MForbidden.ErrCode &&
		(strings.Contains(he.RespError.Err, "already in the room") || // Synapse
			strings.Contains(he.RespError.Err, "already joined to room")) // Dendrite
}

// permanent tells an error that retries cannot cure: a 4xx answer of the
// homeserver (except 429), or a Sandcat user or group that no longer
// exists. The message or event is skipped rather than retried, so one bad
// item never stalls the bridge.
func permanent(err error) bool {
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, errNotBridgeable) {
		return true
	}
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil {
		return false
	}
	if misconfigured(err) {
		return false
	}
	s := he.Response.StatusCode
	return s >= 400 && s < 500 && s != http.StatusTooManyRequests
}

// unreachable tells a call that got no HTTP answer at all.
func unreachable(err error) bool {
	var he mautrix.HTTPError
	return errors.As(err, &he) && he.Response == nil
}

// misconfigured tells a homeserver refusal that says the bridge itself is
// misconfigured (a wrong as_token, a registration the homeserver has not
// loaded, a namespace of another server name): no message is to blame, so
// it is retried (and logged as an error) until the configuration is fixed,
// never skipped.
func misconfigured(err error) bool {
	return errors.Is(err, mautrix.MUnknownToken) || errors.Is(err, mautrix.MMissingToken) ||
		errors.Is(err, mautrix.MExclusive)
}

// matrixUserID is the Sandcat user id of a Matrix user: derived from its
// Matrix id, so creating it again after a crash finds the same user.
func matrixUserID(mxid id.UserID) string {
	sum := sha256.Sum256([]byte("matrix:" + mxid))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:21]
}
