package controllers

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/pkg/notify"
)

// webhookSink collects the notifications a webhook receives, as
// "<reason> <member>".
type webhookSink struct {
	mu  sync.Mutex
	got []string
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var e notify.Event
	_ = json.NewDecoder(r.Body).Decode(&e)
	s.mu.Lock()
	s.got = append(s.got, e.Reason+" "+e.Member)
	s.mu.Unlock()
}

func (s *webhookSink) wait(n int) []string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := append([]string(nil), s.got...)
		s.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) == n {
				// Give one sent in excess the time to arrive.
				time.Sleep(200 * time.Millisecond)
				s.mu.Lock()
				got = append([]string(nil), s.got...)
				s.mu.Unlock()
			}
			sort.Strings(got)
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// transitionsHarness is a reconciler that records Events in memory and a
// webhook to notify; check compares the Events and notifications sent since.
func transitionsHarness(t *testing.T) (r groupReconciler, spec *licensehav1.NotificationsSpec, check func(events, notifications []string)) {
	t.Helper()
	sink := &webhookSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	rec := events.NewFakeRecorder(10)
	r = groupReconciler{Recorder: rec, notifier: &notifier{policy: notify.Policy{AllowInternal: true, AllowHTTPCredentials: true}}}
	spec = &licensehav1.NotificationsSpec{Webhook: &licensehav1.WebhookNotification{URL: srv.URL}}
	check = func(wantEvents, wantNotifications []string) {
		t.Helper()
		if got := drain(rec); !slices.Equal(got, wantEvents) {
			t.Errorf("events\n got %q\nwant %q", got, wantEvents)
		}
		if got := sink.wait(len(wantNotifications)); !slices.Equal(got, wantNotifications) {
			t.Errorf("notifications %q, want %q", got, wantNotifications)
		}
	}
	return r, spec, check
}

func drain(rec *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// TestPairTransitions: a pair records an Event for each change of its
// connection, sync, sides and serving server, and notifies for a side lost
// or recovered, a takeover, a failback and a loss of service.
func TestPairTransitions(t *testing.T) {
	ready := func(s metav1.ConditionStatus) []metav1.Condition {
		return []metav1.Condition{{Type: licensehav1.ConditionReady, Status: s}}
	}
	upSide := licensehav1.PairServerStatus{Ready: true}
	synced := metav1.Now()
	active := licensehav1.LicenseBackupPairStatus{Phase: licensehav1.PairActive, Connected: true, Synchronized: true, LastSyncTime: &synced,
		ActiveServer: licensehav1.SideMain, GroupStatus: licensehav1.GroupStatus{Conditions: ready(metav1.ConditionTrue)},
		Main: licensehav1.PairServerStatus{Ready: true, Serving: true}, Backup: upSide}
	with := func(f func(*licensehav1.LicenseBackupPairStatus)) licensehav1.LicenseBackupPairStatus {
		s := *active.DeepCopy()
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name           string
		before, after  licensehav1.LicenseBackupPairStatus
		events, notify []string
	}{{
		name: "steady", before: active, after: active,
	}, {
		name:   "the backup takes over from a main that went away",
		before: active,
		after: with(func(s *licensehav1.LicenseBackupPairStatus) {
			s.ActiveServer, s.Connected, s.Synchronized = licensehav1.SideBackup, false, false
			s.Main, s.Backup = licensehav1.PairServerStatus{}, licensehav1.PairServerStatus{Ready: true, Serving: true}
		}),
		events: []string{
			"Warning MainLost The main is down: its server is neither ready nor serving",
			"Warning Disconnected Main and backup no longer reach each other",
			"Warning OutOfSync The backup no longer holds the main's latest settings",
			"Warning TookOver The backup took over while the main is down",
		},
		notify: []string{"MainLost main", "TookOver backup"},
	}, {
		name: "the main is up again, the backup still serves",
		before: with(func(s *licensehav1.LicenseBackupPairStatus) {
			s.ActiveServer, s.Connected = licensehav1.SideBackup, false
			s.Main, s.Backup = licensehav1.PairServerStatus{}, licensehav1.PairServerStatus{Ready: true, Serving: true}
		}),
		after: with(func(s *licensehav1.LicenseBackupPairStatus) {
			s.ActiveServer = licensehav1.SideBackup
			s.Main, s.Backup = upSide, licensehav1.PairServerStatus{Ready: true, Serving: true}
		}),
		events: []string{"Normal MainRecovered The main is up again", "Normal Reconnected Main and backup reach each other again"},
		notify: []string{"MainRecovered main"},
	}, {
		name: "the main serves again",
		before: with(func(s *licensehav1.LicenseBackupPairStatus) {
			s.ActiveServer, s.Connected = licensehav1.SideBackup, false
		}),
		after:  active,
		events: []string{"Normal Reconnected Main and backup reach each other again", "Normal FailedBack The main serves again"},
		notify: []string{"FailedBack main"},
	}, {
		name:   "the backup is lost while the main serves",
		before: active,
		after: with(func(s *licensehav1.LicenseBackupPairStatus) {
			s.Backup, s.Connected = licensehav1.PairServerStatus{}, false
		}),
		events: []string{"Warning BackupLost The backup is down: its server is neither ready nor serving",
			"Warning Disconnected Main and backup no longer reach each other"},
		notify: []string{"BackupLost backup"},
	}, {
		name:   "the backup is back",
		before: with(func(s *licensehav1.LicenseBackupPairStatus) { s.Backup = licensehav1.PairServerStatus{} }),
		after:  active,
		events: []string{"Normal BackupRecovered The backup is up again"},
		notify: []string{"BackupRecovered backup"},
	}, {
		name:   "sides coming up while the pair forms: no Event",
		before: licensehav1.LicenseBackupPairStatus{Phase: licensehav1.PairForming},
		after:  with(func(s *licensehav1.LicenseBackupPairStatus) { s.ActiveServer = "" }),
	}, {
		name: "the backup comes up after the main, before both were ever up: no side Event, no notification",
		before: licensehav1.LicenseBackupPairStatus{Phase: licensehav1.PairDegraded, ActiveServer: licensehav1.SideMain,
			Main: licensehav1.PairServerStatus{Ready: true, Serving: true}, GroupStatus: licensehav1.GroupStatus{Conditions: ready(metav1.ConditionTrue)}},
		after:  active,
		events: []string{"Normal Reconnected Main and backup reach each other again"},
	}, {
		name:   "nobody serves any more",
		before: active,
		after: with(func(s *licensehav1.LicenseBackupPairStatus) {
			s.ActiveServer, s.Conditions = "", ready(metav1.ConditionFalse)
		}),
		events: []string{"Warning ServiceLost Neither server serves"},
		notify: []string{"ServiceLost "},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			gr, spec, check := transitionsHarness(t)
			p := statusPair(1, licensehav1.ActivePassive)
			p.Spec.Notifications, p.Status = spec, tc.after
			(&LicenseBackupPairReconciler{gr}).recordTransitions(context.Background(), p, &tc.before)
			check(tc.events, tc.notify)
		})
	}
}

// TestTriadTransitions: a triad records an Event for each change of its
// active member, named by why it changed, and of its quorum; it notifies for
// failovers and a lost quorum.
func TestTriadTransitions(t *testing.T) {
	quorum := func(s metav1.ConditionStatus) []metav1.Condition {
		return []metav1.Condition{{Type: licensehav1.ConditionQuorumSatisfied, Status: s}}
	}
	st := func(active string, epoch int64, q metav1.ConditionStatus) licensehav1.LicenseTriadStatus {
		return licensehav1.LicenseTriadStatus{ActiveMember: active, Epoch: epoch, MembersInQuorum: 3, GroupStatus: licensehav1.GroupStatus{Conditions: quorum(q)}}
	}
	standingBy := func(s licensehav1.LicenseTriadStatus, name string) licensehav1.LicenseTriadStatus {
		s.Members = []licensehav1.TriadMemberStatus{{Name: name, Ready: true, State: licensehav1.MemberStandby}}
		return s
	}
	for _, tc := range []struct {
		name           string
		before, after  licensehav1.LicenseTriadStatus
		leaseReason    string
		events, notify []string
	}{{
		name: "steady", before: st("a", 1, "True"), after: st("a", 1, "True"),
	}, {
		name: "formed", before: licensehav1.LicenseTriadStatus{}, after: st("a", 1, "True"), leaseReason: "Acquire",
		events: []string{"Normal Formed Member a serves"},
	}, {
		name: "the active stopped serving", before: st("a", 1, "True"), after: st("", 1, "True"),
		events: []string{"Warning FailingOver Member a stopped serving; waiting for another member to take over"},
		notify: []string{"FailingOver "},
	}, {
		name: "b took over", before: st("a", 1, "True"), after: st("b", 2, "True"), leaseReason: "Takeover",
		events: []string{"Warning FailedOver Member b took over (epoch 2)"},
		notify: []string{"FailedOver b"},
	}, {
		name: "a handed over to b", before: st("a", 1, "True"), after: st("b", 2, "True"), leaseReason: "Switchover",
		events: []string{"Normal SwitchedOver Member a handed over to b (epoch 2)"},
	}, {
		name: "a handed over, the Lease says nothing: a stands by", before: st("a", 1, "True"),
		after:  standingBy(st("b", 2, "True"), "a"),
		events: []string{"Normal SwitchedOver Member a handed over to b (epoch 2)"},
	}, {
		name: "the Primary serves again", before: st("b", 2, "True"), after: st("a", 3, "True"), leaseReason: "Failback",
		events: []string{"Normal FailedBack Primary a serves again (epoch 3)"},
	}, {
		name: "quorum lost", before: st("a", 1, "True"),
		after:  licensehav1.LicenseTriadStatus{ActiveMember: "a", Epoch: 1, MembersInQuorum: 1, GroupStatus: licensehav1.GroupStatus{Conditions: quorum("False")}},
		events: []string{"Warning QuorumLost Only 1 of 3 members are in contact; nobody may serve"},
		notify: []string{"QuorumLost a"},
	}, {
		name: "quorum restored", before: st("a", 1, "False"), after: st("a", 1, "True"),
		events: []string{"Normal QuorumRestored 3 of 3 members are in contact"},
	}, {
		name: "quorum reached while forming: no Event", before: st("", 0, "False"), after: st("", 0, "True"),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			gr, spec, check := transitionsHarness(t)
			triad := statusTriad(1)
			triad.Spec.Notifications, triad.Status = spec, tc.after
			(&LicenseTriadReconciler{gr}).recordTransitions(context.Background(), triad, &tc.before, tc.leaseReason)
			check(tc.events, tc.notify)
		})
	}
}

// TestTransitionsOncePerStoredState: a reconcile that starts from the same
// stored group (the same resourceVersion: a stale cache, a retried status
// write) derives the same transitions again; they are recorded and notified
// once. The next stored state may bring the same transition anew.
func TestTransitionsOncePerStoredState(t *testing.T) {
	gr, spec, check := transitionsHarness(t)
	r := &LicenseBackupPairReconciler{gr}
	synced := metav1.Now()
	before := licensehav1.LicenseBackupPairStatus{Phase: licensehav1.PairActive, ActiveServer: licensehav1.SideMain, LastSyncTime: &synced,
		Main: licensehav1.PairServerStatus{Ready: true, Serving: true}, Backup: licensehav1.PairServerStatus{Ready: true}}
	after := *before.DeepCopy()
	after.ActiveServer, after.Main, after.Backup.Serving = licensehav1.SideBackup, licensehav1.PairServerStatus{}, true
	reconcile := func(resourceVersion string) {
		p := statusPair(1, licensehav1.ActivePassive)
		p.UID, p.ResourceVersion = "uid-1", resourceVersion
		p.Spec.Notifications, p.Status = spec, *after.DeepCopy()
		r.recordTransitions(context.Background(), p, before.DeepCopy())
	}
	reconcile("10")
	reconcile("10")
	reconcile("10")
	check([]string{"Warning MainLost The main is down: its server is neither ready nor serving",
		"Warning TookOver The backup took over while the main is down"},
		[]string{"MainLost main", "TookOver backup"})
	reconcile("11")
	check([]string{"Warning MainLost The main is down: its server is neither ready nor serving",
		"Warning TookOver The backup took over while the main is down"},
		[]string{"MainLost main", "MainLost main", "TookOver backup", "TookOver backup"})
}
