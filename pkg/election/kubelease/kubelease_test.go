package kubelease

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"

	"github.com/licenseha/licenseha/pkg/election"
)

func TestMappingRoundTrip(t *testing.T) {
	m := Mapping{Group: "plant-a", DurationSeconds: 6}
	for _, rec := range []election.LeaseRecord{
		{Holder: "a", HolderIncarnation: 1<<32 | 77, Epoch: 3, Reason: election.ReasonAcquire},
		{Epoch: 3, HandoffTo: "b", Reason: election.ReasonRoleChange},
		{Holder: "b", HolderIncarnation: 2<<32 | 5, Epoch: 4, Reason: election.ReasonRoleChange, AfterRelease: true},
	} {
		l := &coordinationv1.Lease{}
		l.ResourceVersion = "42"
		m.Fill(l, rec, time.Unix(100, 0))
		got := m.Record(l)
		rec.Version = "42"
		if got != rec {
			t.Errorf("round trip of %+v gave %+v", rec, got)
		}
		if rec.Holder != "" && *l.Spec.HolderIdentity != "plant-a-"+string(rec.Holder) {
			t.Errorf("holderIdentity %q, want the holder's pod", *l.Spec.HolderIdentity)
		}
		if rec.Holder == "" && l.Spec.HolderIdentity != nil {
			t.Errorf("a released Lease names %q", *l.Spec.HolderIdentity)
		}
	}
}

func TestMappingStampsAcquisitions(t *testing.T) {
	m := Mapping{Group: "g"}
	l := &coordinationv1.Lease{}
	m.Fill(l, election.LeaseRecord{Holder: "a", Epoch: 1}, time.Unix(100, 0))
	m.Fill(l, election.LeaseRecord{Holder: "a", Epoch: 1}, time.Unix(200, 0))
	if l.Spec.AcquireTime.Unix() != 100 || l.Spec.RenewTime.Unix() != 200 || *l.Spec.LeaseTransitions != 1 {
		t.Fatalf("renewal: acquire %v renew %v transitions %d", l.Spec.AcquireTime, l.Spec.RenewTime, *l.Spec.LeaseTransitions)
	}
	m.Fill(l, election.LeaseRecord{Holder: "b", Epoch: 2}, time.Unix(300, 0))
	if l.Spec.AcquireTime.Unix() != 300 || *l.Spec.LeaseTransitions != 2 {
		t.Fatalf("acquisition: acquire %v transitions %d", l.Spec.AcquireTime, *l.Spec.LeaseTransitions)
	}
}

// A holder that is not one of the group's pods (someone else's write, or a
// pod of another naming) reads as a name no configuration contains, so the
// members treat it as a holder that is not a candidate and take over.
func TestForeignHolderIsNoMember(t *testing.T) {
	m := Mapping{Group: "plant-a"}
	l := &coordinationv1.Lease{}
	l.Spec.HolderIdentity = ptr.To("intruder")
	if got := m.Record(l).Holder; got == "" || got == "intruder" {
		t.Fatalf("foreign holder read as %q", got)
	}
}
