package storage

import (
	"context"
	"fmt"

	"github.com/sandcat-im/sandcat/im/wire"
)

// Friends keeps friend requests (table friendships: one row per requester →
// target pair) and friend entries (table friends: one row per direction,
// both rows of a friendship sharing fs_id = the friendships id).
//
// Statuses are the wire's FriendshipStatus values (wire.FriendPending ...
// wire.FriendDeleted); the tables store their enum labels. Times are unix
// milliseconds supplied by the caller. The wire.Friend and
// wire.FriendshipWithUser rows returned are joined with the users table and
// have the JSON shapes of sandcat-wire.md §2.2.
type Friends interface {
	// RequestFriend upserts the request r.UserID → r.FriendID: a new row gets a
	// fresh id; an existing one keeps its id and gets status Pending, the new
	// apply_msg, req_remark and source, and create_time = update_time = r.Time
	// (bug B14 of the original fixed: a re-request is visible to time-based sync).
	RequestFriend(ctx context.Context, r NewFriendRequest) (FriendRequest, error)
	// GetFriendRequest returns the request fsID, or ErrNotFound.
	GetFriendRequest(ctx context.Context, fsID string) (FriendRequest, error)
	// AgreeFriendRequest, in one transaction, sets request fsID to Accepted
	// (resp_msg, resp_remark, update_time) and upserts both friends rows with
	// status Accepted and fs_id = fsID: requester → target with remark =
	// req_remark, target → requester with remark = resp_remark. It works on a
	// Pending request and again on an Accepted one (idempotent); other
	// statuses give ErrConflict, an unknown fsID ErrNotFound, and so does a
	// side whose users row is missing or deleted.
	AgreeFriendRequest(ctx context.Context, fsID string, respMsg, respRemark *string, now int64) (Agreement, error)
	// RejectFriendRequest sets a Pending (or already Rejected) request to
	// Rejected with resp_msg and update_time; other statuses give ErrConflict,
	// an unknown fsID ErrNotFound.
	RejectFriendRequest(ctx context.Context, fsID string, respMsg *string, now int64) (FriendRequest, error)
	// GetFriend returns userID's friends row for friendID, joined with
	// friendID's (non-deleted) user, whatever its status; ErrNotFound if none.
	GetFriend(ctx context.Context, userID, friendID string) (wire.Friend, error)
	// ListFriendsSince returns userID's friends rows with update_time > since,
	// joined with non-deleted users, all statuses included (Deleted and
	// Blacked too, so sync propagates them), oldest update first. Never nil.
	ListFriendsSince(ctx context.Context, userID string, since int64) ([]wire.Friend, error)
	// ListFriendRequestsSince returns the requests addressed to userID with
	// update_time > since, each with the requester's profile (user_id =
	// requester), all statuses, oldest update first. remark and email are
	// null (the target has set no remark; a non-friend's e-mail is not shown).
	// Never nil.
	ListFriendRequestsSince(ctx context.Context, userID string, since int64) ([]wire.FriendshipWithUser, error)
	// ListPendingFriendRequests is ListFriendRequestsSince restricted to Pending
	// requests, whatever their time.
	ListPendingFriendRequests(ctx context.Context, userID string) ([]wire.FriendshipWithUser, error)
	// DeleteFriend ends the friendship fsID between userID and friendID: the
	// friendships row and both friends rows with that fs_id go to Deleted with
	// update_time = now, except a Blacked row, which stays blocked. ErrNotFound
	// when fsID is not a request between these two users (either direction).
	DeleteFriend(ctx context.Context, userID, friendID, fsID string, now int64) error
	// SetFriendRemark sets remark and update_time on userID's row for
	// friendID; ErrNotFound if there is no such row.
	SetFriendRemark(ctx context.Context, userID, friendID, remark string, now int64) error
	// BlockUser sets by's friends row for whom to Blacked (creating it, with a
	// fresh fs_id, when there is none). Blocking twice is a no-op besides
	// update_time.
	BlockUser(ctx context.Context, by, whom string, now int64) error
	// UnblockUser restores by's row for whom: Accepted if the friendship the
	// row belongs to (friendships.id = fs_id) is still Accepted, else Deleted
	// (the row is kept, with a new update_time, so devices syncing by time
	// learn that the block is gone). A row that is not Blacked, or no row, is
	// a no-op.
	UnblockUser(ctx context.Context, by, whom string, now int64) error
	// IsBlocked reports whether by has blocked whom.
	IsBlocked(ctx context.Context, by, whom string) (bool, error)
	// AreFriends reports whether a and b are friends: both friends rows exist
	// and are Accepted (a block on either side ends it).
	AreFriends(ctx context.Context, a, b string) (bool, error)
}

// FriendRequest is a friendships row.
type FriendRequest struct {
	ID         string // fs_id
	UserID     string // requester
	FriendID   string // target
	Status     int32  // wire.FriendPending ...
	ApplyMsg   *string
	ReqRemark  *string // the requester's remark for the target
	RespMsg    *string
	RespRemark *string // the target's remark for the requester
	Source     string
	CreateTime int64
	UpdateTime int64
}

// NewFriendRequest is the input of Friends.RequestFriend.
type NewFriendRequest struct {
	UserID    string // requester
	FriendID  string // target
	ApplyMsg  *string
	ReqRemark *string
	Source    string
	Time      int64 // unix ms
}

// Agreement is the result of Friends.AgreeFriendRequest.
type Agreement struct {
	Request FriendRequest
	// ForRequester is the requester's new entry: the agreer's profile with
	// remark = req_remark (content of the FriendApplyResp notice).
	ForRequester wire.Friend
	// ForAgreer is the agreer's new entry: the requester's profile with
	// remark = resp_remark (the response of PUT /friend/agree).
	ForAgreer wire.Friend
}

// FriendStatusLabel returns the database label (the PostgreSQL enum
// friend_request_status) of a wire friendship status.
func FriendStatusLabel(status int32) (string, error) {
	switch status {
	case wire.FriendPending:
		return "Pending", nil
	case wire.FriendAccepted:
		return "Accepted", nil
	case wire.FriendRejected:
		return "Rejected", nil
	case wire.FriendBlacked:
		return "Blacked", nil
	case wire.FriendDeleted:
		return "Deleted", nil
	}
	return "", fmt.Errorf("storage: unknown friendship status %d", status)
}

// ParseFriendStatus returns the wire value of a database friendship status label.
func ParseFriendStatus(label string) (int32, error) {
	switch label {
	case "Pending":
		return wire.FriendPending, nil
	case "Accepted":
		return wire.FriendAccepted, nil
	case "Rejected":
		return wire.FriendRejected, nil
	case "Blacked":
		return wire.FriendBlacked, nil
	case "Deleted":
		return wire.FriendDeleted, nil
	}
	return 0, fmt.Errorf("storage: unknown friendship status %q", label)
}
