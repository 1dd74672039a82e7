package appservice

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"maunium.net/go/mautrix"
)

// ErrPingUnsupported is wrapped by the error of Ping when the homeserver has
// no appservice ping endpoint (Matrix before v1.7; Dendrite). The bridge may
// then only warn: the tokens could not be checked.
var ErrPingUnsupported = errors.New("the homeserver does not implement the appservice ping (Matrix v1.7)")

// PingError is a ping the homeserver answered with an error. Error() says
// which setting is probably wrong.
type PingError struct {
	Status   int    // HTTP status of the homeserver's answer
	ErrCode  string // its errcode ("" when the body was not a Matrix error)
	Message  string // its error text
	ASStatus int    // M_BAD_STATUS: the HTTP status the appservice URL answered the homeserver
	ASBody   string // M_BAD_STATUS: the body it answered
	Hint     string // the probable misconfiguration
	cause    error
}

func (e *PingError) Error() string {
	var b strings.Builder
	b.WriteString("appservice: ping of the homeserver failed: ")
	b.WriteString(e.Hint)
	fmt.Fprintf(&b, " (homeserver answered HTTP %d", e.Status)
	if e.ErrCode != "" {
		b.WriteString(" " + e.ErrCode)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.ASStatus != 0 {
		fmt.Fprintf(&b, "; the appservice URL answered it HTTP %d %s", e.ASStatus, strings.TrimSpace(e.ASBody))
	}
	b.WriteString(")")
	return b.String()
}

// Unwrap returns ErrPingUnsupported for a homeserver without the endpoint.
func (e *PingError) Unwrap() error { return e.cause }

// Ping asks the homeserver to ping this appservice
// (POST /_matrix/client/v1/appservice/{id}/ping with the as_token), which
// checks both tokens and both URLs at once, and returns the round trip the
// homeserver measured. The Server must already be serving at the URL of the
// registration. Since Synapse 1.132 a successful ping also makes the
// homeserver resend at once the transactions it holds for us.
func (s *Server) Ping(ctx context.Context) (time.Duration, error) {
	if s.cfg.HomeserverURL == "" {
		return 0, errors.New("appservice: ping: appservice.homeserver_url is not set")
	}
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	txnID := "sandcat-ping-" + hex.EncodeToString(rnd[:])
	body, err := json.Marshal(mautrix.ReqAppservicePing{TxnID: txnID})
	if err != nil {
		return 0, fmt.Errorf("appservice: ping: %w", err)
	}
	endpoint := strings.TrimRight(s.cfg.HomeserverURL, "/") + "/_matrix/client/v1/appservice/" +
		url.PathEscape(s.cfg.ID) + "/ping"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("appservice: ping: appservice.homeserver_url %q: %w", s.cfg.HomeserverURL, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.ASToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("appservice: ping: cannot reach the homeserver at appservice.homeserver_url %q: %w",
			s.cfg.HomeserverURL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("appservice: ping: read the answer of %s: %w", endpoint, err)
	}
	if resp.StatusCode == http.StatusOK {
		var ok mautrix.RespAppservicePing
		if err := json.Unmarshal(raw, &ok); err != nil {
			return 0, fmt.Errorf("appservice: ping: %s answered 200 with no ping result (%v): "+
				"appservice.homeserver_url %q is probably not a Matrix homeserver", endpoint, err, s.cfg.HomeserverURL)
		}
		if !s.pinged(txnID) {
			return 0, fmt.Errorf("appservice: ping: the homeserver reached an appservice at the url of registration %q, "+
				"but not this bridge: that url points at another process (compare it with appservice.listen)", s.cfg.ID)
		}
		return time.Duration(ok.DurationMS) * time.Millisecond, nil
	}
	return 0, s.pingError(resp.StatusCode, raw)
}

func (s *Server) pingError(status int, raw []byte) *PingError {
	e := &PingError{Status: status}
	var re mautrix.RespError
	if json.Unmarshal(raw, &re) != nil || re.ErrCode == "" {
		e.Message = strings.TrimSpace(string(raw))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "..."
		}
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			e.cause = ErrPingUnsupported
		}
		e.Hint = fmt.Sprintf("appservice.homeserver_url %q does not answer like a Matrix homeserver "+
			"(or the homeserver does not implement the appservice ping)", s.cfg.HomeserverURL)
		return e
	}
	e.ErrCode, e.Message = re.ErrCode, re.Err
	switch re.ErrCode {
	case "M_UNKNOWN_TOKEN", "M_MISSING_TOKEN":
		e.Hint = "the homeserver does not know appservice.as_token: it must equal as_token in the registration file, " +
			"and the file must be listed in the homeserver's app_service_config_files (restart the homeserver after a change)"
	case "M_FORBIDDEN":
		e.Hint = fmt.Sprintf("appservice.as_token belongs to a registration whose id is not appservice.id %q: "+
			"the two ids must be equal", s.cfg.ID)
	case "M_URL_NOT_SET":
		e.Hint = "the registration has no url: set url in the registration file to where this bridge listens " +
			"(appservice.listen, as seen from the homeserver) and restart the homeserver"
	case "M_CONNECTION_FAILED", "M_CONNECTION_TIMEOUT":
		e.Hint = "the homeserver cannot reach the url of the registration: it must point at this bridge " +
			"(appservice.listen, as seen from the homeserver)"
	case "M_BAD_STATUS":
		if n, ok := re.ExtraData["status"].(float64); ok {
			e.ASStatus = int(n)
		}
		e.ASBody, _ = re.ExtraData["body"].(string)
		switch e.ASStatus {
		case http.StatusUnauthorized, http.StatusForbidden:
			e.Hint = "the bridge refused the homeserver's hs_token: appservice.hs_token must equal hs_token " +
				"in the registration file (restart the homeserver after changing the file)"
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			e.Hint = "the url of the registration answers, but not with this bridge's Application Service API " +
				"(wrong port or path?)"
		default:
			e.Hint = "the bridge at the url of the registration answered the homeserver's ping with an error"
		}
	case "M_UNRECOGNIZED":
		e.cause = ErrPingUnsupported
		e.Hint = "the homeserver does not implement the appservice ping (Matrix v1.7); tokens and url are unchecked"
	default:
		e.Hint = "unexpected answer"
	}
	return e
}
