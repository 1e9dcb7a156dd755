package election

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxDatagram bounds a sealed heartbeat; anything longer is dropped unread.
const MaxDatagram = 8 << 10

// macContext separates heartbeat MACs from any other use of the group key.
const macContext = "licenseha/heartbeat/v1"

// Codec seals heartbeats into datagrams and opens them. The MAC (HMAC-SHA256
// with the group's shared key) covers the group's name, the sender, the
// receiver and the whole heartbeat, including its incarnation, sequence
// number and echo of the receiver's incarnation: a heartbeat cannot be
// forged, moved to another group or receiver, and a replayed one is
// recognised by its sequence (Machine.Receive) or its stale echo.
type Codec struct {
	group string
	key   []byte
}

// NewCodec returns a codec for the group named group with the shared key.
func NewCodec(group string, key []byte) *Codec {
	return &Codec{group: group, key: append([]byte(nil), key...)}
}

// sealed is a heartbeat on the wire.
type sealed struct {
	Heartbeat json.RawMessage `json:"hb"`
	MAC       []byte          `json:"mac"`
}

// Seal encodes hb for the wire.
func (c *Codec) Seal(hb Heartbeat) ([]byte, error) {
	if hb.From == "" || hb.To == "" {
		return nil, errors.New("election: a heartbeat names its sender and receiver")
	}
	raw, err := json.Marshal(hb)
	if err != nil {
		return nil, err
	}
	return json.Marshal(sealed{Heartbeat: raw, MAC: c.mac(hb.From, hb.To, raw)})
}

// Open decodes a datagram addressed to self. It fails on anything not
// sealed with the group's key for this receiver.
func (c *Codec) Open(self MemberID, data []byte) (Heartbeat, error) {
	var hb Heartbeat
	if len(data) > MaxDatagram {
		return hb, fmt.Errorf("election: datagram of %d bytes exceeds %d", len(data), MaxDatagram)
	}
	var s sealed
	if err := json.Unmarshal(data, &s); err != nil {
		return hb, fmt.Errorf("election: not a heartbeat: %w", err)
	}
	if err := json.Unmarshal(s.Heartbeat, &hb); err != nil {
		return Heartbeat{}, fmt.Errorf("election: not a heartbeat: %w", err)
	}
	if hb.To != self || !hmac.Equal(s.MAC, c.mac(hb.From, hb.To, s.Heartbeat)) {
		return Heartbeat{}, errors.New("election: heartbeat not authenticated for this member")
	}
	return hb, nil
}

func (c *Codec) mac(from, to MemberID, payload []byte) []byte {
	h := hmac.New(sha256.New, c.key)
	for _, part := range []string{macContext, c.group, string(from), string(to)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(payload)
	return h.Sum(nil)
}
