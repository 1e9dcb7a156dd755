package election

import (
	"net"
	"testing"
	"time"
)

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestUDPTransportDeliversOnlyAuthenticatedHeartbeatsOfItsTriad(t *testing.T) {
	recvConn := listenLoopback(t)
	addr := recvConn.LocalAddr().String()
	receiver := NewUDPTransport(recvConn, "plant-a", []byte("k1"), map[MemberID]string{"a": "127.0.0.1:1"})
	defer receiver.Close()

	senders := map[string]*UDPTransport{
		"wrong key":   NewUDPTransport(listenLoopback(t), "plant-a", []byte("k2"), map[MemberID]string{"b": addr}),
		"other triad": NewUDPTransport(listenLoopback(t), "plant-b", []byte("k1"), map[MemberID]string{"b": addr}),
		"good":        NewUDPTransport(listenLoopback(t), "plant-a", []byte("k1"), map[MemberID]string{"b": addr}),
	}
	for name, s := range senders {
		defer s.Close()
		hb := Heartbeat{From: "a", Incarnation: 7, SentAt: 3 * time.Second, Holding: 2,
			View: LeaseRecord{Holder: "a", Epoch: 2}, Grant: &Grant{Incarnation: 9, SentAt: time.Second, Epoch: 2}}
		if name == "good" {
			hb.Hears = 6
		}
		if err := s.Send("b", hb); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	select {
	case hb := <-receiver.Receive():
		if hb.Hears != 6 || hb.Grant == nil || hb.Grant.Epoch != 2 || hb.View.Holder != "a" || hb.SentAt != 3*time.Second {
			t.Fatalf("received %+v, want the good sender's heartbeat intact", hb)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the authenticated heartbeat did not arrive")
	}
	select {
	case hb := <-receiver.Receive():
		t.Fatalf("received a heartbeat that should have been dropped: %+v", hb)
	case <-time.After(200 * time.Millisecond):
	}
}
