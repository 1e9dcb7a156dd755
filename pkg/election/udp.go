package election

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"
)

// UDPTransport sends heartbeats as single UDP datagrams: one JSON object of
// a few hundred bytes, prefixed with an HMAC-SHA256 over the triad's name
// and the payload. UDP suits heartbeats: a lost or late heartbeat is simply
// superseded by the next one, there is no connection state to rebuild after
// a peer restarts or moves to a new pod IP, and a partitioned peer costs
// nothing (no retries, no blocked writes).
type UDPTransport struct {
	conn  *net.UDPConn
	group string
	key   []byte
	recv  chan Heartbeat

	mu       sync.Mutex
	peers    map[MemberID]string
	resolved map[MemberID]resolvedAddr
}

type resolvedAddr struct {
	addr *net.UDPAddr
	at   time.Time
}

// resolveTTL: peers are addressed by DNS names whose address changes when a
// pod is replaced, so resolutions are cached only briefly.
const resolveTTL = 5 * time.Second

// maxDatagram bounds what we read; heartbeats are far smaller.
const maxDatagram = 4096

// NewUDPTransport serves heartbeats on conn for the triad named group. peers
// maps each peer to its host:port. Datagrams not authenticated with key (the
// triad's shared secret) or not for group are dropped. It reads until conn
// is closed.
func NewUDPTransport(conn *net.UDPConn, group string, key []byte, peers map[MemberID]string) *UDPTransport {
	t := &UDPTransport{conn: conn, group: group, key: key, recv: make(chan Heartbeat, 64),
		peers: peers, resolved: map[MemberID]resolvedAddr{}}
	go t.read()
	return t
}

// Receive implements Transport.
func (t *UDPTransport) Receive() <-chan Heartbeat { return t.recv }

// Send implements Transport.
func (t *UDPTransport) Send(to MemberID, hb Heartbeat) error {
	addr, err := t.resolve(to)
	if err != nil {
		return err
	}
	payload, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	_, err = t.conn.WriteToUDP(append(t.mac(payload), payload...), addr)
	return err
}

// Close stops the transport.
func (t *UDPTransport) Close() error { return t.conn.Close() }

func (t *UDPTransport) mac(payload []byte) []byte {
	h := hmac.New(sha256.New, t.key)
	h.Write([]byte(t.group))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum(nil)
}

func (t *UDPTransport) resolve(to MemberID) (*net.UDPAddr, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.resolved[to]; ok && time.Since(r.at) < resolveTTL {
		return r.addr, nil
	}
	hostport, ok := t.peers[to]
	if !ok {
		return nil, fmt.Errorf("election: unknown peer %q", to)
	}
	addr, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return nil, err
	}
	t.resolved[to] = resolvedAddr{addr: addr, at: time.Now()}
	return addr, nil
}

func (t *UDPTransport) read() {
	defer close(t.recv)
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := t.conn.ReadFromUDP(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return // closed
		}
		if n < sha256.Size {
			continue
		}
		sum, payload := buf[:sha256.Size], buf[sha256.Size:n]
		if !hmac.Equal(sum, t.mac(payload)) {
			continue
		}
		var hb Heartbeat
		if json.Unmarshal(payload, &hb) != nil {
			continue
		}
		if _, known := t.peers[hb.From]; !known {
			continue
		}
		select {
		case t.recv <- hb:
		default: // the runner is behind; heartbeats are superseded anyway
		}
	}
}
