package friend

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// FriendInfo is the public profile served by GET /friend/query/{user_id}.
type FriendInfo struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Avatar    string  `json:"avatar"`
	Gender    string  `json:"gender"`
	Age       int32   `json:"age"`
	Region    *string `json:"region"`
	Account   string  `json:"account"`
	Signature string  `json:"signature"`
	Email     *string `json:"email"`
}

// SyncResponse is the body of GET /friend/{id}/{offline_time}.
type SyncResponse struct {
	Friends []wire.Friend             `json:"friends"`
	Fs      []wire.FriendshipWithUser `json:"fs"`
}

// fsCreate is the body of POST /friend.
type fsCreate struct {
	UserID    *string `json:"user_id"`
	FriendID  *string `json:"friend_id"`
	ApplyMsg  *string `json:"apply_msg"`
	ReqRemark *string `json:"req_remark"`
	Source    *string `json:"source"`
	Platform  *int32  `json:"platform"`
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) error {
	var in fsCreate
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if err := required(field{"user_id", in.UserID}, field{"friend_id", in.FriendID}); err != nil {
		return err
	}
	if in.Source == nil {
		return httpx.Bad("missing field `source`")
	}
	userID, friendID := *in.UserID, *in.FriendID
	if err := httpx.SameUser(r, userID); err != nil {
		return err
	}
	if userID == friendID {
		return httpx.Bad("cannot send a friend request to oneself")
	}
	ctx := r.Context()
	requester, err := s.users.GetUser(ctx, userID)
	if err != nil {
		return usersError(err)
	}
	target, err := s.users.GetUser(ctx, friendID)
	if err != nil {
		return usersError(err)
	}
	blocked, err := s.store.IsBlocked(ctx, friendID, userID)
	if err != nil {
		return httpx.Internal(httpx.KindDbError, err)
	}
	if blocked {
		return httpx.Forbidden("the user does not accept friend requests from you")
	}
	fr, err := s.store.RequestFriend(ctx, storage.NewFriendRequest{UserID: userID, FriendID: friendID,
		ApplyMsg: in.ApplyMsg, ReqRemark: in.ReqRemark, Source: *in.Source, Time: s.now().UnixMilli()})
	if err != nil {
		return storeError(err)
	}
	content := wire.FriendshipWithUser{FsID: fr.ID, UserID: requester.ID, Name: requester.Name,
		Avatar: requester.Avatar, Gender: requester.Gender, Age: requester.Age, Region: requester.Region,
		Status: fr.Status, ApplyMsg: fr.ApplyMsg, Source: fr.Source, CreateTime: fr.CreateTime,
		Account: requester.Account}
	if err := s.send(ctx, s.notice(wire.MsgTypeFriendApplyReq, userID, friendID, content.MarshalBincode(), in.Platform)); err != nil {
		return err
	}
	httpx.WriteJSON(w, wire.FriendshipWithUser{FsID: fr.ID, UserID: target.ID, Name: target.Name,
		Avatar: target.Avatar, Gender: target.Gender, Age: target.Age, Region: target.Region,
		Status: fr.Status, Source: fr.Source, CreateTime: fr.CreateTime, Account: target.Account,
		Remark: fr.ReqRemark})
	return nil
}

// agreeReply is the body of PUT /friend/agree and PUT /friend/reject (which ignores resp_remark).
type agreeReply struct {
	FsID       *string `json:"fs_id"`
	RespMsg    *string `json:"resp_msg"`
	RespRemark *string `json:"resp_remark"`
	Platform   *int32  `json:"platform"`
}

// decodeReply reads an agreeReply and checks that the caller is the target of the request.
func (s *Service) decodeReply(w http.ResponseWriter, r *http.Request) (agreeReply, storage.FriendRequest, error) {
	var in agreeReply
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		return in, storage.FriendRequest{}, err
	}
	if err := required(field{"fs_id", in.FsID}); err != nil {
		return in, storage.FriendRequest{}, err
	}
	fr, err := s.store.GetFriendRequest(r.Context(), *in.FsID)
	if err != nil {
		return in, fr, storeError(err)
	}
	if err := httpx.SameUser(r, fr.FriendID); err != nil {
		return in, fr, err
	}
	return in, fr, nil
}

func (s *Service) agree(w http.ResponseWriter, r *http.Request) error {
	in, fr, err := s.decodeReply(w, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	ag, err := s.store.AgreeFriendRequest(ctx, fr.ID, in.RespMsg, in.RespRemark, s.now().UnixMilli())
	if err != nil {
		return storeError(err)
	}
	// The original sends FriendApplyResp with an empty send_id.
	m := s.notice(wire.MsgTypeFriendApplyResp, "", fr.UserID, ag.ForRequester.MarshalBincode(), in.Platform)
	if err := s.send(ctx, m); err != nil {
		return err
	}
	httpx.WriteJSON(w, ag.ForAgreer)
	return nil
}

func (s *Service) reject(w http.ResponseWriter, r *http.Request) error {
	in, fr, err := s.decodeReply(w, r)
	if err != nil {
		return err
	}
	if _, err := s.store.RejectFriendRequest(r.Context(), fr.ID, in.RespMsg, s.now().UnixMilli()); err != nil {
		return storeError(err)
	}
	return nil
}

// pairBody is the body of DELETE /friend, PUT /friend/remark and /friend/block.
type pairBody struct {
	UserID   *string `json:"user_id"`
	FriendID *string `json:"friend_id"`
	FsID     *string `json:"fs_id"`
	Remark   *string `json:"remark"`
	Platform *int32  `json:"platform"`
}

// decodePair reads a pairBody, checks the given fields and that the caller is user_id.
func (s *Service) decodePair(w http.ResponseWriter, r *http.Request, extra ...string) (pairBody, error) {
	var in pairBody
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		return in, err
	}
	fields := []field{{"user_id", in.UserID}, {"friend_id", in.FriendID}}
	for _, name := range extra {
		switch name {
		case "fs_id":
			fields = append(fields, field{name, in.FsID})
		case "remark":
			fields = append(fields, field{name, in.Remark})
		}
	}
	if err := required(fields...); err != nil {
		return in, err
	}
	if err := httpx.SameUser(r, *in.UserID); err != nil {
		return in, err
	}
	return in, nil
}

func (s *Service) delete(w http.ResponseWriter, r *http.Request) error {
	in, err := s.decodePair(w, r, "fs_id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	if err := s.store.DeleteFriend(ctx, *in.UserID, *in.FriendID, *in.FsID, s.now().UnixMilli()); err != nil {
		return storeError(err)
	}
	return s.send(ctx, s.notice(wire.MsgTypeFriendDelete, *in.UserID, *in.FriendID, nil, in.Platform))
}

func (s *Service) remark(w http.ResponseWriter, r *http.Request) error {
	in, err := s.decodePair(w, r, "remark")
	if err != nil {
		return err
	}
	if err := s.store.SetFriendRemark(r.Context(), *in.UserID, *in.FriendID, *in.Remark, s.now().UnixMilli()); err != nil {
		return storeError(err)
	}
	return nil
}

func (s *Service) block(w http.ResponseWriter, r *http.Request) error {
	in, err := s.decodePair(w, r)
	if err != nil {
		return err
	}
	if *in.UserID == *in.FriendID {
		return httpx.Bad("cannot block oneself")
	}
	ctx := r.Context()
	if _, err := s.users.GetUser(ctx, *in.FriendID); err != nil {
		return usersError(err)
	}
	if err := s.store.BlockUser(ctx, *in.UserID, *in.FriendID, s.now().UnixMilli()); err != nil {
		return storeError(err)
	}
	return nil
}

func (s *Service) unblock(w http.ResponseWriter, r *http.Request) error {
	in, err := s.decodePair(w, r)
	if err != nil {
		return err
	}
	if err := s.store.UnblockUser(r.Context(), *in.UserID, *in.FriendID, s.now().UnixMilli()); err != nil {
		return storeError(err)
	}
	return nil
}

func (s *Service) query(w http.ResponseWriter, r *http.Request) error {
	u, err := s.users.GetUser(r.Context(), mux.Vars(r)["user_id"])
	if err != nil {
		return usersError(err)
	}
	httpx.WriteJSON(w, FriendInfo{ID: u.ID, Name: u.Name, Avatar: u.Avatar, Gender: u.Gender, Age: u.Age,
		Region: u.Region, Account: u.Account, Signature: u.Signature, Email: u.Email})
	return nil
}

func (s *Service) applyList(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if err := httpx.SameUser(r, id); err != nil {
		return err
	}
	list, err := s.store.ListPendingFriendRequests(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	if list == nil {
		list = []wire.FriendshipWithUser{}
	}
	httpx.WriteJSON(w, list)
	return nil
}

func (s *Service) sync(w http.ResponseWriter, r *http.Request) error {
	vars := mux.Vars(r)
	id := vars["id"]
	since, err := strconv.ParseInt(vars["offline_time"], 10, 64)
	if err != nil {
		return httpx.Errorf(http.StatusBadRequest, httpx.KindPathParsing, "offline_time: %v", err)
	}
	if err := httpx.SameUser(r, id); err != nil {
		return err
	}
	ctx := r.Context()
	friends, err := s.store.ListFriendsSince(ctx, id, since)
	if err != nil {
		return storeError(err)
	}
	fs, err := s.store.ListFriendRequestsSince(ctx, id, since)
	if err != nil {
		return storeError(err)
	}
	if friends == nil {
		friends = []wire.Friend{}
	}
	if fs == nil {
		fs = []wire.FriendshipWithUser{}
	}
	httpx.WriteJSON(w, SyncResponse{Friends: friends, Fs: fs})
	return nil
}
