package controllers

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"

	lua "github.com/yuin/gopher-lua"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// These tests hold the health rules of docs/gitops.md to the statuses the
// operator writes: the Argo CD health script (config/argocd/health.lua) runs
// in a Lua VM, as Argo CD runs it, and kstatus (what Flux uses) computes its
// status, both on group objects whose status comes from computeTriadStatus
// and computePairStatus.

// healthCase is a group as the operator leaves it, and the health each tool
// must report.
type healthCase struct {
	name    string
	obj     runtime.Object
	argo    string // Argo CD: Healthy, Progressing, Degraded
	kstatus status.Status
	// message is a part of the Argo CD message.
	message string
}

func healthTriad(generation int64, in triadInput, observed bool) *licensehav1.LicenseTriad {
	t := statusTriad(generation)
	t.TypeMeta = metav1.TypeMeta{APIVersion: licensehav1.GroupVersion.String(), Kind: "LicenseTriad"}
	t.Status = triadStatusOf(nil, t, in)
	if observed {
		// What reconcileGroup records once every step has run.
		t.Status.ObservedGeneration = generation
	} else {
		t.Status.ObservedGeneration = generation - 1
	}
	return t
}

func healthPair(in pairInput, prev licensehav1.PairPhase) *licensehav1.LicenseBackupPair {
	p := statusPair(2, licensehav1.ActivePassive)
	p.TypeMeta = metav1.TypeMeta{APIVersion: licensehav1.GroupVersion.String(), Kind: "LicenseBackupPair"}
	p.Status = licensehav1.LicenseBackupPairStatus{Phase: prev}
	p.Status = pairStatusOf(nil, p, in)
	p.Status.ObservedGeneration = 2
	return p
}

func healthCases() []healthCase {
	steady := steadyTriad
	lease := func() *coordinationv1.Lease { return heldLease("plant-a", 1) }
	pairPods := func() map[string]*corev1.Pod {
		return pods(pairMember("main", group.StateActive, 5, "1.0", "backup"),
			pairMember("backup", group.StateStandby, 5, "1.0", "main"))
	}
	deleting := healthTriad(3, triadInput{pods: steady(), lease: lease()}, true)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	deleting.Finalizers = []string{"licenseha.io/dissolve"}
	return []healthCase{{
		name: "triad: a serves, all three in contact and in sync",
		obj:  healthTriad(3, triadInput{pods: steady(), lease: lease()}, true),
		argo: "Healthy", kstatus: status.CurrentStatus, message: "Active (Serving)",
	}, {
		name: "triad: the operator has not seen the latest spec",
		obj:  healthTriad(3, triadInput{pods: steady(), lease: lease()}, false),
		argo: "Progressing", kstatus: status.InProgressStatus, message: "observe generation 3",
	}, {
		name: "triad: no status at all",
		obj: &licensehav1.LicenseTriad{TypeMeta: metav1.TypeMeta{APIVersion: licensehav1.GroupVersion.String(), Kind: "LicenseTriad"},
			ObjectMeta: metav1.ObjectMeta{Name: "plant", Namespace: "ns", Generation: 1}},
		argo: "Progressing", kstatus: status.CurrentStatus, message: "Waiting for the operator",
	}, {
		name: "triad: forming",
		obj:  healthTriad(1, triadInput{pods: pods()}, true),
		argo: "Progressing", kstatus: status.InProgressStatus, message: "Forming (NotServing)",
	}, {
		name: "triad: a serves, the witness is down",
		obj: healthTriad(3, triadInput{pods: pods(triadMember("a", group.StateActive, 4, "b"),
			triadMember("b", group.StateStandby, 4, "a")), lease: lease()}, true),
		argo: "Degraded", kstatus: status.CurrentStatus, message: "Degraded (MemberUnavailable)",
	}, {
		name: "triad: no quorum",
		obj: healthTriad(3, triadInput{pods: pods(triadMember("a", group.StateFenced, 4),
			triadMember("b", group.StateStandby, 4)), lease: lease()}, true),
		argo: "Degraded", kstatus: status.InProgressStatus, message: "NoQuorum",
	}, {
		name: "triad: the licence Secret is missing while a serves",
		obj:  healthTriad(3, triadInput{pods: steady(), lease: lease(), blocked: licenceMissing}, true),
		argo: "Degraded", kstatus: status.InProgressStatus, message: "Degraded (SecretNotFound)",
	}, {
		name: "triad: a member's pod belongs to something else",
		obj: healthTriad(3, triadInput{pods: pods(triadMember("a", group.StateActive, 4, "b"),
			triadMember("b", group.StateStandby, 4, "a")), lease: lease(), blocked: otherGroupsPod}, true),
		argo: "Degraded", kstatus: status.FailedStatus, message: "Failed (MemberInAnotherGroup): Pods plant-c",
	}, {
		name: "triad: being dissolved",
		obj:  deleting,
		argo: "Healthy", kstatus: status.TerminatingStatus, message: "Active",
	}, {
		name: "pair: the main serves, both connected and in sync",
		obj:  healthPair(pairInput{pods: pairPods(), lease: heldLease("plant-main", 1)}, licensehav1.PairActive),
		argo: "Healthy", kstatus: status.CurrentStatus, message: "Active (Serving)",
	}, {
		name: "pair: forming",
		obj:  healthPair(pairInput{pods: pods()}, ""),
		argo: "Progressing", kstatus: status.InProgressStatus, message: "Forming",
	}, {
		name: "pair: the backup is down",
		obj: healthPair(pairInput{pods: pods(pairMember("main", group.StateActive, 5, "1.0")),
			lease: heldLease("plant-main", 1)}, licensehav1.PairActive),
		argo: "Degraded", kstatus: status.CurrentStatus, message: "Degraded (MemberUnavailable)",
	}, {
		name: "pair: neither serves after having served",
		obj:  healthPair(pairInput{pods: pods(), lease: heldLease("plant-main", 1)}, licensehav1.PairActive),
		argo: "Degraded", kstatus: status.InProgressStatus, message: "Degraded (NoActiveMember)",
	}, {
		name: "pair: an object it needs belongs to something else",
		obj: healthPair(pairInput{pods: pairPods(), lease: heldLease("plant-main", 1),
			blocked: &blocker{reason: licensehav1.ReasonObjectNotOwned, failed: true,
				message: "Service plant exists and is not owned by this LicenseBackupPair"}}, licensehav1.PairActive),
		argo: "Degraded", kstatus: status.FailedStatus, message: "Failed (ObjectNotOwned): Service plant",
	}}
}

func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// luaValue converts a JSON-like value into Lua, as Argo CD does for obj.
func luaValue(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		tb := L.NewTable()
		for _, x := range v {
			tb.Append(luaValue(L, x))
		}
		return tb
	case map[string]any:
		tb := L.NewTable()
		for k, x := range v {
			tb.RawSetString(k, luaValue(L, x))
		}
		return tb
	}
	panic("unexpected value type")
}

// runHealthScript runs the script with obj set, as Argo CD does, and
// returns the status and message of the table it returns.
func runHealthScript(t *testing.T, script string, obj *unstructured.Unstructured) (string, string) {
	t.Helper()
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	// The libraries Argo CD opens for health scripts.
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", luaValue(L, obj.Object))
	if err := L.DoString(script); err != nil {
		t.Fatalf("running the health script: %v", err)
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the health script returned %s, want a table", L.Get(-1).Type())
	}
	return lua.LVAsString(ret.RawGetString("status")), lua.LVAsString(ret.RawGetString("message"))
}

func TestArgoCDHealth(t *testing.T) {
	script, err := os.ReadFile("../config/argocd/health.lua")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range healthCases() {
		t.Run(tc.name, func(t *testing.T) {
			st, msg := runHealthScript(t, string(script), toUnstructured(t, tc.obj))
			if st != tc.argo || !strings.Contains(msg, tc.message) {
				t.Errorf("Argo CD health %s %q, want %s with %q", st, msg, tc.argo, tc.message)
			}
		})
	}
}

func TestKstatus(t *testing.T) {
	for _, tc := range healthCases() {
		t.Run(tc.name, func(t *testing.T) {
			res, err := status.Compute(toUnstructured(t, tc.obj))
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.kstatus {
				t.Errorf("kstatus %s (%s), want %s", res.Status, res.Message, tc.kstatus)
			}
		})
	}
}

// TestHealthScriptCopies: docs/gitops.md and the argocd-cm patch hold
// health.lua itself, for both kinds.
func TestHealthScriptCopies(t *testing.T) {
	script, err := os.ReadFile("../config/argocd/health.lua")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(script))
	b, err := os.ReadFile("../config/argocd/argocd-cm-patch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.UnmarshalStrict(b, &cm); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"LicenseTriad", "LicenseBackupPair"} {
		key := "resource.customizations.health.licenseha.io_" + kind
		if got := strings.TrimSpace(cm.Data[key]); got != want {
			t.Errorf("config/argocd/argocd-cm-patch.yaml: %s is not config/argocd/health.lua", key)
		}
	}
	doc, err := os.ReadFile("../docs/gitops.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```lua\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) != 1 || strings.TrimSpace(blocks[0][1]) != want {
		t.Errorf("docs/gitops.md: want one lua block holding config/argocd/health.lua, found %d blocks that differ", len(blocks))
	}
}
