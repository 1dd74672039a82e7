package gateway

// The internal push API: how a message server in another process hands
// deliveries to this gateway. It is served on the gateway's internal listener
// (never the client-facing one) as POST /internal/push, authenticated by a
// shared secret header, and carries a batch of deliveries in a lean binary
// encoding (see AppendPushBatch). The gateway answers 204 once the
// deliveries are queued on the users' connections.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/wire"
)

const (
	// PushRoute is the pattern to mount the push handler on (net/http ServeMux syntax).
	PushRoute = "POST " + PushPath
	// PushPath is the path of the internal push endpoint.
	PushPath = "/internal/push"
	// PushSecretHeader carries the shared push secret.
	PushSecretHeader = "X-Sandcat-Push-Secret"
	// PushGatewayHeader carries the id of the gateway the sender means to
	// reach. A gateway with another id answers 421 Misdirected Request: the
	// address now belongs to another process, and the addressed one is gone.
	PushGatewayHeader = "X-Sandcat-Gateway"
	// PushContentType is the media type of a push batch.
	PushContentType = "application/x-sandcat-push"
	// DefaultMaxPushBytes bounds a push request body.
	DefaultMaxPushBytes = 16 << 20
	// MaxPushDeliveries bounds the deliveries of one batch: senders split
	// larger ones, and the decoder refuses them before allocating.
	MaxPushDeliveries = 1 << 16
)

// ErrPushBatch is wrapped by every push batch decoding error.
var ErrPushBatch = errors.New("gateway: bad push batch")

// DerivePushSecret derives the push secret from the JWT secret that every
// process of a deployment shares, so that no extra configuration is needed.
// Knowing the push secret does not reveal the JWT secret.
func DerivePushSecret(jwtSecret []byte) string {
	m := hmac.New(sha256.New, jwtSecret)
	m.Write([]byte("sandcat internal push v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// Push batch encoding, version 1:
//
//	batch    = 0x01 count:uvarint delivery{count}
//	delivery = user:str flags:u8 body
//	str      = len:uvarint bytes
//	flags    = bit 0: echo; bit 1: same
//	body     = same ? seq:varint send_seq:varint : msg (bincode Msg, sandcat-wire.md §3.2)
//
// "same" means: the previous full message of the batch with this seq and
// send_seq. A group fan-out (one copy per member, differing only in seq and
// send_seq) therefore costs a few bytes per member instead of a whole Msg.
const (
	pushV1       = 1
	pushFlagEcho = 1 << 0
	pushFlagSame = 1 << 1
	pushFlagMask = pushFlagEcho | pushFlagSame
)

// AppendPushBatch appends the push encoding of ds to dst. Deliveries without
// a Msg are skipped.
func AppendPushBatch(dst []byte, ds []msgserver.Delivery) []byte {
	n := 0
	for i := range ds {
		if ds[i].Msg != nil {
			n++
		}
	}
	dst = append(dst, pushV1)
	dst = binary.AppendUvarint(dst, uint64(n))
	var base *wire.Msg
	for i := range ds {
		d := &ds[i]
		if d.Msg == nil {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(len(d.UserID)))
		dst = append(dst, d.UserID...)
		var flags byte
		if d.Echo {
			flags |= pushFlagEcho
		}
		if base != nil && sameButSeqs(base, d.Msg) {
			dst = append(dst, flags|pushFlagSame)
			dst = binary.AppendVarint(dst, d.Msg.Seq)
			dst = binary.AppendVarint(dst, d.Msg.SendSeq)
			continue
		}
		dst = append(dst, flags)
		dst = wire.AppendMsg(dst, d.Msg)
		base = d.Msg
	}
	return dst
}

// sameButSeqs reports whether a and b differ at most in Seq and SendSeq.
func sameButSeqs(a, b *wire.Msg) bool {
	if a == b {
		return true
	}
	if (a.RelatedMsgID == nil) != (b.RelatedMsgID == nil) ||
		(a.RelatedMsgID != nil && *a.RelatedMsgID != *b.RelatedMsgID) {
		return false
	}
	return a.SendID == b.SendID && a.ReceiverID == b.ReceiverID && a.LocalID == b.LocalID &&
		a.ServerID == b.ServerID && a.CreateTime == b.CreateTime && a.SendTime == b.SendTime &&
		a.MsgType == b.MsgType && a.ContentType == b.ContentType && a.IsRead == b.IsRead &&
		a.GroupID == b.GroupID && a.Platform == b.Platform && a.Avatar == b.Avatar &&
		a.Nickname == b.Nickname && bytes.Equal(a.Content, b.Content)
}

// DecodePushBatch decodes a batch made by AppendPushBatch. The result does
// not alias b. Messages of "same" deliveries share the content of their
// base message (deliveries are read-only).
func DecodePushBatch(b []byte) ([]msgserver.Delivery, error) {
	if len(b) == 0 || b[0] != pushV1 {
		return nil, fmt.Errorf("%w: unknown version", ErrPushBatch)
	}
	off := 1
	count, n := binary.Uvarint(b[off:])
	if n <= 0 {
		return nil, fmt.Errorf("%w: count", ErrPushBatch)
	}
	off += n
	// Every delivery takes at least 3 bytes (user length, user, flags): a
	// count beyond that is a lie, and must not size an allocation.
	if count > uint64(len(b)-off)/3 {
		return nil, fmt.Errorf("%w: count %d exceeds the body", ErrPushBatch, count)
	}
	if count > MaxPushDeliveries {
		return nil, fmt.Errorf("%w: %d deliveries, at most %d in a batch", ErrPushBatch, count, MaxPushDeliveries)
	}
	ds := make([]msgserver.Delivery, count)
	msgs := make([]wire.Msg, count)
	var base *wire.Msg
	for i := range ds {
		ulen, n := binary.Uvarint(b[off:])
		if n <= 0 || ulen == 0 || ulen > uint64(len(b)-off-n) {
			return nil, fmt.Errorf("%w: delivery %d: user id", ErrPushBatch, i)
		}
		off += n
		ds[i].UserID = string(b[off : off+int(ulen)])
		off += int(ulen)
		if off >= len(b) {
			return nil, fmt.Errorf("%w: delivery %d: flags", ErrPushBatch, i)
		}
		flags := b[off]
		off++
		if flags&^pushFlagMask != 0 {
			return nil, fmt.Errorf("%w: delivery %d: unknown flags %#x", ErrPushBatch, i, flags)
		}
		ds[i].Echo = flags&pushFlagEcho != 0
		if flags&pushFlagSame != 0 {
			if base == nil {
				return nil, fmt.Errorf("%w: delivery %d: no message to repeat", ErrPushBatch, i)
			}
			seq, n1 := binary.Varint(b[off:])
			if n1 <= 0 {
				return nil, fmt.Errorf("%w: delivery %d: seq", ErrPushBatch, i)
			}
			off += n1
			sendSeq, n2 := binary.Varint(b[off:])
			if n2 <= 0 {
				return nil, fmt.Errorf("%w: delivery %d: send_seq", ErrPushBatch, i)
			}
			off += n2
			msgs[i] = *base
			msgs[i].Seq, msgs[i].SendSeq = seq, sendSeq
		} else {
			m, err := wire.DecodeMsg(b[off:])
			if err != nil {
				return nil, fmt.Errorf("%w: delivery %d: %w", ErrPushBatch, i, err)
			}
			off += m.BincodeSize()
			msgs[i] = m
			base = &msgs[i]
		}
		ds[i].Msg = &msgs[i]
	}
	if off != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrPushBatch, len(b)-off)
	}
	return ds, nil
}

// PushHandlerOptions configures the internal push endpoint.
type PushHandlerOptions struct {
	// GatewayID is this gateway's id: the one it writes into the online
	// routes and registers in discovery. Required.
	GatewayID string
	// Secret is the shared push secret (DerivePushSecret, or configured).
	// Required.
	Secret string
	// MaxBytes bounds a request body (default DefaultMaxPushBytes).
	MaxBytes int64
	// Logger defaults to the gateway's.
	Logger *slog.Logger
}

// PushHandler serves POST /internal/push for one Gateway.
type PushHandler struct {
	g      *Gateway
	id     string
	secret []byte
	max    int64
	log    *slog.Logger
	bufs   sync.Pool // *bytes.Buffer
}

// NewPushHandler returns the internal push endpoint of g. Mount it on the
// gateway's internal listener at PushRoute.
func NewPushHandler(g *Gateway, o PushHandlerOptions) (*PushHandler, error) {
	switch {
	case g == nil:
		return nil, errors.New("gateway: push handler needs a Gateway")
	case o.GatewayID == "":
		return nil, errors.New("gateway: push handler needs the gateway id")
	case o.Secret == "":
		return nil, errors.New("gateway: push handler needs a secret")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxPushBytes
	}
	if o.Logger == nil {
		o.Logger = g.log
	}
	return &PushHandler{g: g, id: o.GatewayID, secret: []byte(o.Secret), max: o.MaxBytes, log: o.Logger}, nil
}

// ServeHTTP accepts a push batch and delivers it: 204 when queued on the
// connections (users without a connection here are skipped), 401 for a
// missing or wrong secret, 421 when the batch is meant for another gateway
// id, 400 for an undecodable batch, 413 when too large, 503 when the gateway
// is shutting down.
func (h *PushHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusMethodNotAllowed, httpx.KindBadRequest, "use POST"))
		return
	}
	if got := r.Header.Get(PushSecretHeader); subtle.ConstantTimeCompare([]byte(got), h.secret) != 1 {
		h.log.Warn("gateway: push refused: bad secret", "remote", r.RemoteAddr)
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusUnauthorized, httpx.KindUnAuthorized, "bad push secret"))
		return
	}
	if want := r.Header.Get(PushGatewayHeader); want != "" && want != h.id {
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusMisdirectedRequest, httpx.KindServiceNotFound,
			"this is gateway %q, not %q", h.id, want))
		return
	}
	if h.g.closed.Load() {
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusServiceUnavailable, httpx.KindServiceNotFound,
			"gateway is shutting down"))
		return
	}
	buf := h.getBuf()
	defer h.putBuf(buf)
	if r.ContentLength > 0 && r.ContentLength <= h.max {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.max)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusRequestEntityTooLarge, httpx.KindPayloadTooLarge,
				"push batch larger than %d bytes", h.max))
			return
		}
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusBadRequest, httpx.KindBodyParsing, "read push batch: %v", err))
		return
	}
	ds, err := DecodePushBatch(buf.Bytes())
	if err != nil {
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusBadRequest, httpx.KindBodyParsing, "%v", err))
		return
	}
	h.g.stats.pushed.Add(int64(len(ds)))
	h.g.Deliver(ds)
	w.WriteHeader(http.StatusNoContent)
}

func (h *PushHandler) getBuf() *bytes.Buffer {
	if b, ok := h.bufs.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

// putBuf keeps buffers of ordinary batches for reuse, not huge ones.
func (h *PushHandler) putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		h.bufs.Put(b)
	}
}
