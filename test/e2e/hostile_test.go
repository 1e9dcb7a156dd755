package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	lhclient "github.com/licenseha/licenseha/pkg/client"
	"github.com/licenseha/licenseha/pkg/server"
	"github.com/licenseha/licenseha/test/harness"
	"github.com/licenseha/licenseha/test/podnet"
)

// Figures of the hostile-client scenario.
const (
	// perAddress is --max-checkouts-per-address of the scenario's triad.
	perAddress = 50
	// reserved is the seats of the triad's licence (100 printers) reserved
	// for the honest client's client group.
	reserved = 6
	// floodPrinters is how many distinct printer names the flood checks out
	// and releases: well past the usage rows a month keeps per printer.
	floodPrinters = 5000
	// maxStateObjectBytes is what the agent allows each half of the synced
	// state (internal/agent); Kubernetes objects hold at most 1 MiB.
	maxStateObjectBytes = 900 * 1024
)

// A hostile client — any pod that reaches the client API — sends what once
// overflowed the usage counters (standbys then refused every snapshot), grew
// the synced state without bound and exhausted a licence with rotating
// client ids, while an honest client holds seats. The honest client must
// keep its seats and its reservation, the state must keep reaching the
// standbys within its size limit, and a failover afterwards must lose
// nothing.
var _ = Describe("Hostile clients", Label("e2e"), func() {
	It("cannot break a triad's state sync, exhaust its licence or take an honest client's seats", func(ctx SpecContext) {
		r := startTriad(ctx, "hostile", func(t *licensehav1.LicenseTriad) {
			t.Spec.Server.Args = append(t.Spec.Server.Args, "--max-checkouts-per-address="+strconv.Itoa(perAddress))
		})
		DeferCleanup(func(ctx SpecContext) { deleteTriad(ctx, r.ns, r.name) })
		honestID := "e2e-hostile" // the Load's client id (startTriad)
		licence := r.licence

		By("reserving seats for the honest client's client group")
		adminA := adminClient(ctx, r.ns, r.name, "a")
		Expect(adminA.SetSettings(ctx, server.Settings{
			ClientGroups: map[string]server.ClientGroup{"honest": {Clients: []string{honestID}}},
			Reservations: map[string]map[string]int{"honest": {licence: reserved}},
		})).To(Succeed())
		honestHeld := r.load.Client.Checkouts()
		Expect(honestHeld).To(HaveLen(seats))
		var p1 string
		for _, c := range honestHeld {
			if c.Printer == "p1" {
				p1 = c.ID
			}
		}
		Expect(p1).NotTo(BeEmpty())
		Expect(r.load.Client.ReportUsage(ctx, p1, 7, 70)).To(Succeed())

		By("starting two intruder pods in the triad's namespace")
		evil1 := startIntruder(ctx, r.ns, "intruder-1", r.urls["a"])
		evil2 := startIntruder(ctx, r.ns, "intruder-2", r.urls["a"])
		adminB := adminClient(ctx, r.ns, r.name, "b")
		before, err := adminB.State(ctx)
		Expect(err).NotTo(HaveOccurred())

		By("reporting int64-max usage twice")
		co := evil1.checkout(ctx, "intruder", "overflow-printer", licence)
		for range 2 {
			evil1.expect(ctx, "POST", "/v1/checkouts/"+co+"/usage",
				fmt.Sprintf(`{"jobs": %d, "labels": %d}`, int64(math.MaxInt64), int64(math.MaxInt64)), http.StatusNoContent, "")
		}
		evil1.expect(ctx, "DELETE", "/v1/checkouts/"+co, "", http.StatusNoContent, "")

		By(fmt.Sprintf("checking out and releasing %d distinct printer names", floodPrinters))
		flooded := time.Now()
		evil1.flood(ctx, licence, floodPrinters, 4)
		figure("hostile: flood of distinct printers (checkout+release each)", time.Since(flooded))

		By("sending oversized and malformed bodies")
		co = evil1.checkout(ctx, "intruder", "malformed-printer", licence)
		long := strings.Repeat("x", server.MaxNameBytes+1)
		for _, c := range []struct {
			method, path, body string
			status             int
			code               string
		}{
			{"POST", "/v1/checkouts", `{"client":"` + strings.Repeat("x", 2*server.DefaultMaxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge, server.CodeTooLarge},
			{"POST", "/v1/checkouts", `{"client": "x", "printer": `, http.StatusBadRequest, server.CodeBadRequest},
			{"POST", "/v1/checkouts", `{"client":"x","printer":"y","license":"` + licence + `"}{"client":"x"}`, http.StatusBadRequest, server.CodeBadRequest},
			{"POST", "/v1/checkouts", `{"client":"x","printer":"y","license":"` + licence + `","admin":true}`, http.StatusBadRequest, server.CodeBadRequest},
			{"POST", "/v1/checkouts", `{"client":"` + long + `","printer":"y","license":"` + licence + `"}`, http.StatusBadRequest, server.CodeBadRequest},
			{"POST", "/v1/checkouts", `{"client":"x","printer":"a\u0000b","license":"` + licence + `"}`, http.StatusBadRequest, server.CodeBadRequest},
			{"POST", "/v1/checkouts", `{"client":"x","printer":"*","license":"` + licence + `"}`, http.StatusBadRequest, server.CodeBadRequest},
			{"POST", "/v1/checkouts", `[1, 2, 3]`, http.StatusBadRequest, server.CodeBadRequest},
			{"PUT", "/v1/checkouts/" + strings.Repeat("i", server.MaxIDBytes+1), `{"client":"x","printer":"y","license":"` + licence + `"}`, http.StatusBadRequest, server.CodeBadRequest},
			{"POST", "/v1/checkouts/" + co + "/usage", `{"jobs": -5, "labels": 1}`, http.StatusBadRequest, server.CodeBadRequest},
			{"POST", "/v1/checkouts/" + co + "/usage", `{"jobs": 1e30, "labels": 1}`, http.StatusBadRequest, server.CodeBadRequest},
			{"POST", "/v1/checkouts/" + co + "/usage", `{"jobs": 99999999999999999999999, "labels": 1}`, http.StatusBadRequest, server.CodeBadRequest},
			{"POST", "/v1/checkouts/" + co + "/usage", strings.Repeat(" ", 2*server.DefaultMaxBodyBytes) + `{}`, http.StatusRequestEntityTooLarge, server.CodeTooLarge},
		} {
			evil1.expect(ctx, c.method, c.path, c.body, c.status, c.code)
		}
		evil1.expect(ctx, "DELETE", "/v1/checkouts/"+co, "", http.StatusNoContent, "")

		By("rotating client ids from one address")
		held1, status, e := evil1.checkoutUntilRefused(ctx, "intruder", "rot", licence, perAddress+5)
		Expect(held1).To(Equal(perAddress), "checkouts granted to one address under rotating client ids")
		Expect(status).To(Equal(http.StatusTooManyRequests), "%s", e.Message)
		Expect(e.Code).To(Equal(server.CodeTooManyCheckouts))
		Expect(e.Message).To(ContainSubstring("limit per source address"))
		Expect(e.Message).To(ContainSubstring(evil1.ip))

		By("taking every seat not reserved from a second address")
		// 100 printers: 3 held by the honest client, 50 by intruder-1, 3
		// still reserved for the honest client's group.
		want2 := 100 - seats - perAddress - (reserved - seats)
		held2, status, e := evil2.checkoutUntilRefused(ctx, "intruder2", "rot2", licence, want2+5)
		Expect(held2).To(Equal(want2), "seats the second address got")
		Expect(status).To(Equal(http.StatusConflict), "%s", e.Message)
		Expect(e.Code).To(Equal(server.CodeNoSeat))
		Expect(e.Message).To(ContainSubstring("reserved for the client groups honest"))

		By("the honest client still gets its reserved seats")
		honest2, err := lhclient.New(lhclient.Config{Endpoints: []string{r.urls["a"], r.urls["b"]}, Members: r.urls,
			ClientID: honestID, Logger: clientLogger()})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(honest2.Close)
		for i := seats + 1; i <= reserved; i++ {
			_, err := honest2.Checkout(ctx, fmt.Sprintf("p%d", i), licence)
			Expect(err).NotTo(HaveOccurred(), "reserved seat %d", i)
		}
		_, err = honest2.Checkout(ctx, "p-beyond-reservation", licence)
		Expect(server.IsCode(err, server.CodeNoSeat)).To(BeTrue(), "a seat beyond the licence: %v", err)
		Expect(r.load.Lost()).To(BeZero(), "the honest client lost seats")

		By("the active member's counters saturated and its usage rows stayed bounded")
		usage, err := adminA.Usage(ctx)
		Expect(err).NotTo(HaveOccurred())
		checkUsage(usage, licence, "the active member")
		st, err := adminA.State(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(st.Corrections).NotTo(BeNil())
		Expect(st.Corrections.SaturatedCounts).To(BeNumerically(">=", 2))
		Expect(st.Corrections.OverflowUsage).To(BeNumerically(">", 0))

		By("the state objects stay under their limit and the standbys hold the active member's state")
		for _, m := range []string{"b", "c"} {
			admin := adminClient(ctx, r.ns, r.name, m)
			Eventually(func(g Gomega) {
				active, err := adminA.State(ctx)
				g.Expect(err).NotTo(HaveOccurred())
				standby, err := admin.State(ctx)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(standby.Revision).To(BeNumerically(">", before.Revision))
				g.Expect(standby.Revision).To(Equal(active.Revision), "standby %s lags behind", m)
			}).WithTimeout(60*time.Second).WithPolling(500*time.Millisecond).Should(Succeed(), "the state stopped reaching %s", m)
			usage, err := admin.Usage(ctx)
			Expect(err).NotTo(HaveOccurred())
			checkUsage(usage, licence, "member "+m)
			snap, err := admin.Export(ctx)
			Expect(err).NotTo(HaveOccurred())
			ids := map[string]bool{}
			for _, c := range snap.Checkouts {
				ids[c.ID] = true
			}
			for _, c := range r.load.Client.Checkouts() {
				Expect(ids).To(HaveKey(c.ID), "member %s lacks the honest checkout %s (%s)", m, c.ID, c.Printer)
			}
			for _, c := range honest2.Checkouts() {
				Expect(ids).To(HaveKey(c.ID), "member %s lacks the honest checkout %s (%s)", m, c.ID, c.Printer)
			}
		}

		// Measured once the standbys hold the latest revision, so it is
		// the state published after the attack.
		for _, obj := range []client.Object{&corev1.ConfigMap{}, &corev1.Secret{}} {
			Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: group.StateName(r.name)}, obj)).To(Succeed())
			size := objectDataBytes(obj)
			GinkgoWriter.Printf("state %T: %d bytes of data\n", obj, size)
			Expect(size).To(BeNumerically("<", maxStateObjectBytes))
		}

		By("freezing the active member: the secondary takes over with the state")
		// Frozen rather than killed: a killed primary restarts and serves
		// again before the secondary takes over, and the point is the state
		// the standby received.
		DeferCleanup(func(ctx SpecContext) { _ = env.Fault(ctx, "resume", r.pod("a")) })
		paused := r.fault(ctx, "pause", "a")
		r.waitServing(ctx, 60*time.Second, "b")
		figure("hostile: active frozen after the attack → b serves", time.Since(paused))
		usage, err = adminB.Usage(ctx)
		Expect(err).NotTo(HaveOccurred())
		checkUsage(usage, licence, "the new active member b")
		Eventually(func(g Gomega) {
			g.Expect(r.load.Lost()).To(BeZero())
			for _, hc := range []*lhclient.Client{r.load.Client, honest2} {
				for _, c := range hc.Checkouts() {
					g.Expect(hc.Heartbeat(ctx, c.ID)).To(Succeed(), "heartbeat of %s (%s) on b", c.ID, c.Printer)
				}
			}
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(honest2.Checkouts()).To(HaveLen(reserved - seats))
		snap, err := adminB.Export(ctx)
		Expect(err).NotTo(HaveOccurred())
		var mine int
		for _, c := range snap.Checkouts {
			if c.Client == honestID {
				mine++
			}
		}
		Expect(mine).To(Equal(reserved), "the honest client's checkouts on b")
		r.invariants()
	})
})

// checkUsage checks a member's usage statistics after the attack: the
// overflowing printer's counters stopped at the int64 maximum, no counter is
// negative, the month keeps at most its row cap of named printers (the flood
// is counted under "*"), and the honest client's report is there.
func checkUsage(usage []server.UsageRecord, licence, who string) {
	GinkgoHelper()
	var named, overflowRows int
	var other *server.UsageRecord
	var honest *server.UsageRecord
	period := time.Now().UTC().Format("2006-01")
	for i, u := range usage {
		Expect(int64(u.Checkouts)).To(BeNumerically(">=", 0), "%s: negative count in %+v", who, u)
		Expect(int64(u.Jobs)).To(BeNumerically(">=", 0), "%s: negative count in %+v", who, u)
		Expect(int64(u.Labels)).To(BeNumerically(">=", 0), "%s: negative count in %+v", who, u)
		if u.License != licence || u.Period != period {
			continue
		}
		switch u.Printer {
		case server.OtherPrinter:
			other = &usage[i]
		case "overflow-printer":
			overflowRows++
			Expect(int64(u.Jobs)).To(Equal(int64(math.MaxInt64)), "%s: jobs of the overflowing printer", who)
			Expect(int64(u.Labels)).To(Equal(int64(math.MaxInt64)), "%s: labels of the overflowing printer", who)
			named++
		case "p1":
			honest = &usage[i]
			named++
		default:
			named++
		}
	}
	Expect(overflowRows).To(Equal(1), "%s: the overflowing printer's row", who)
	Expect(honest).NotTo(BeNil(), "%s: the honest client's usage row", who)
	Expect(int64(honest.Jobs)).To(BeNumerically(">=", 7))
	Expect(int64(honest.Labels)).To(BeNumerically(">=", 70))
	Expect(named).To(BeNumerically("<=", server.DefaultUsageRowsPerPeriod), "%s: usage rows of named printers", who)
	Expect(other).NotTo(BeNil(), "%s: no \"*\" row counts the printers beyond the cap", who)
	// Every printer of the flood was checked out once: those without a row
	// of their own are counted under "*".
	Expect(int64(other.Checkouts)).To(BeNumerically(">=", floodPrinters-server.DefaultUsageRowsPerPeriod),
		"%s: checkouts counted under \"*\"", who)
}

// objectDataBytes is the size of a ConfigMap's or Secret's data.
func objectDataBytes(obj client.Object) int {
	n := 0
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		for k, v := range o.Data {
			n += len(k) + len(v)
		}
		for k, v := range o.BinaryData {
			n += len(k) + len(v)
		}
	case *corev1.Secret:
		for k, v := range o.Data {
			n += len(k) + len(v)
		}
	}
	return n
}

// deleteTriad deletes a triad at the end of a spec, so its members do not
// keep the machine busy during the next ones.
func deleteTriad(ctx context.Context, ns, name string) {
	t := &licensehav1.LicenseTriad{}
	t.Namespace, t.Name = ns, name
	_ = env.Client.Delete(ctx, t)
}

// intruder sends raw requests to a member's client API from inside a pod of
// its own (its own source address).
type intruder struct {
	hc   *http.Client
	base string
	ip   string
}

// startIntruder creates an idle pod and returns a client whose connections
// start in that pod's network namespace.
func startIntruder(ctx context.Context, ns, name, base string) *intruder {
	GinkgoHelper()
	// The pause image only sleeps.
	idle := corev1.Container{Name: "idle", Image: harness.IdleImage, ImagePullPolicy: corev1.PullNever}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "intruder"}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken:  ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []corev1.Container{idle},
		},
	}
	Expect(env.Client.Create(ctx, pod)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) { _ = env.Client.Delete(ctx, pod) })
	Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
		g.Expect(pod.Status.PodIP).NotTo(BeEmpty())
	}).WithTimeout(60 * time.Second).Should(Succeed())
	sb, err := sandboxOf(ctx, ns, name)
	Expect(err).NotTo(HaveOccurred())
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 8,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return podnet.Dial(ctx, sb.netns, network, addr)
		},
	}}
	DeferCleanup(hc.CloseIdleConnections)
	return &intruder{hc: hc, base: base, ip: pod.Status.PodIP}
}

func checkoutBody(clientID, printer, licence string) string {
	b, _ := json.Marshal(server.CheckoutRequest{Client: clientID, Printer: printer, License: licence})
	return string(b)
}

// do sends a request and returns the status and, for an error, its body.
func (c *intruder) do(ctx context.Context, method, path, body string) (int, server.Error) {
	GinkgoHelper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	Expect(err).NotTo(HaveOccurred(), "%s %s", method, path)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e server.Error
	if resp.StatusCode >= 300 {
		Expect(json.Unmarshal(data, &e)).To(Succeed(), "error body of %s %s: %q", method, path, data)
	}
	return resp.StatusCode, e
}

// checkoutUntilRefused takes seats of licence under rotating client ids
// <client>-<i> on printers <printer>-<i>, at most max, until the server
// refuses one: it returns how many it got and the refusal (status 0 if
// none).
func (c *intruder) checkoutUntilRefused(ctx context.Context, client, printer, licence string, max int) (held, status int, e server.Error) {
	GinkgoHelper()
	for i := range max {
		status, e := c.do(ctx, "POST", "/v1/checkouts", checkoutBody(fmt.Sprintf("%s-%d", client, i), fmt.Sprintf("%s-%d", printer, i), licence))
		if status != http.StatusCreated {
			return held, status, e
		}
		held++
	}
	return held, 0, server.Error{}
}

// expect sends a request and checks the status and the error code.
func (c *intruder) expect(ctx context.Context, method, path, body string, status int, code string) {
	GinkgoHelper()
	got, e := c.do(ctx, method, path, body)
	short := body
	if len(short) > 80 {
		short = short[:80] + "..."
	}
	Expect(got).To(Equal(status), "%s %s %s: %s %s", method, path, short, e.Code, e.Message)
	Expect(e.Code).To(Equal(code), "%s %s %s: %s", method, path, short, e.Message)
}

// checkout takes a seat and returns its id.
func (c *intruder) checkout(ctx context.Context, clientID, printer, licence string) string {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/v1/checkouts", strings.NewReader(checkoutBody(clientID, printer, licence)))
	Expect(err).NotTo(HaveOccurred())
	resp, err := c.hc.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	Expect(resp.StatusCode).To(Equal(http.StatusCreated), "checkout: %s", data)
	var co server.Checkout
	Expect(json.Unmarshal(data, &co)).To(Succeed())
	return co.ID
}

// flood checks out and releases n printers of the longest allowed distinct
// names, with workers requests at a time.
func (c *intruder) flood(ctx context.Context, licence string, n, workers int) {
	GinkgoHelper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer GinkgoRecover()
			for i := range next {
				// Hex digests compress as badly as names can.
				h1, h2 := sha256.Sum256([]byte{byte(i), byte(i >> 8)}), sha256.Sum256([]byte{byte(i >> 8), byte(i), 1})
				printer := fmt.Sprintf("%06d-%x%x", i, h1, h2)[:server.MaxNameBytes]
				body := checkoutBody("intruder", printer, licence)
				resp, err := c.hc.Post(c.base+"/v1/checkouts", "application/json", bytes.NewReader([]byte(body)))
				if err != nil {
					errs <- err
					return
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("checkout %d: %d %s", i, resp.StatusCode, data)
					return
				}
				var co server.Checkout
				if err := json.Unmarshal(data, &co); err != nil {
					errs <- err
					return
				}
				req, _ := http.NewRequestWithContext(ctx, "DELETE", c.base+"/v1/checkouts/"+co.ID, nil)
				resp, err = c.hc.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					errs <- fmt.Errorf("release %d: %d", i, resp.StatusCode)
					return
				}
			}
		}()
	}
	func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case err := <-errs:
				Fail(err.Error())
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errs:
		Fail(err.Error())
	default:
	}
}
