package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCheckoutHeartbeat measures checkout and heartbeat requests over
// real loopback HTTP with keep-alive connections, from parallel clients
// (GOMAXPROCS × -cpu goroutines, see b.SetParallelism). Each iteration is one
// checkout (a new seat for the first 50 printers of a client, a renewal after)
// and one heartbeat. It reports requests per second and the 99th percentile
// latency of a single request.
func BenchmarkCheckoutHeartbeat(b *testing.B) {
	sg := newSigner(b)
	dir := b.TempDir()
	sg.write(b, dir, "big.lic", sg.license("LIC-1", "LabelDesigner", 1_000_000))
	ts := newTestServer(b, sg, withLicenseDir(dir)) // its clock stands still: nothing expires

	b.SetParallelism(4)
	transport := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: 5 * time.Second}

	var (
		mu        sync.Mutex
		latencies []time.Duration
		clientN   atomic.Int64
		requests  atomic.Int64
	)
	do := func(method, url string, body []byte, out any) (time.Duration, error) {
		start := time.Now()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			return 0, fmt.Errorf("%s %s: %d", method, url, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}

	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		client := fmt.Sprintf("client-%d", clientN.Add(1))
		local := make([]time.Duration, 0, 1024)
		for i := 0; pb.Next(); i++ {
			body, _ := json.Marshal(CheckoutRequest{Client: client, Printer: fmt.Sprintf("p-%d", i%50), License: "LIC-1"})
			var c Checkout
			d1, err := do(http.MethodPost, ts.client.URL+"/v1/checkouts", body, &c)
			if err != nil {
				b.Error(err)
				return
			}
			d2, err := do(http.MethodPut, ts.client.URL+"/v1/checkouts/"+c.ID, nil, &c)
			if err != nil {
				b.Error(err)
				return
			}
			local = append(local, d1, d2)
		}
		requests.Add(int64(len(local)))
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(latencies) == 0 {
		return
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	p99 := latencies[len(latencies)*99/100]
	b.ReportMetric(float64(requests.Load())/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}

// benchServerWith10kCheckouts returns a server holding 10,000 checkouts and
// usage records for 500 printers.
func benchServerWith10kCheckouts(b *testing.B) *testServer {
	sg := newSigner(b)
	dir := b.TempDir()
	sg.write(b, dir, "big.lic", sg.license("LIC-1", "LabelDesigner", 20_000))
	ts := newTestServer(b, sg, withLicenseDir(dir))
	for i := 0; i < 10_000; i++ {
		req := CheckoutRequest{Client: fmt.Sprintf("client-%04d", i/20), Printer: fmt.Sprintf("printer-%03d-%02d", i/20, i%20), License: "LIC-1"}
		if _, err := ts.Checkout(req, "", netip.Addr{}); err != nil {
			b.Fatal(err)
		}
	}
	return ts
}

// BenchmarkSnapshotExport10k measures GET /admin/v1/snapshot of 10,000
// checkouts over loopback HTTP, as the supervisor calls it.
func BenchmarkSnapshotExport10k(b *testing.B) {
	ts := benchServerWith10kCheckouts(b)
	ac := ts.adminClient()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		raw, err := ac.ExportRaw(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(raw)))
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/export")
}

// BenchmarkSnapshotImport10k measures PUT /admin/v1/snapshot of 10,000
// checkouts over loopback HTTP into a standby, including the durable write.
func BenchmarkSnapshotImport10k(b *testing.B) {
	src := benchServerWith10kCheckouts(b)
	raw, err := src.adminClient().ExportRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	dst := newTestServer(b, newSigner(b), withRole(RoleStandby), withMember("b"))
	ac := dst.adminClient()
	ctx := context.Background()
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ac.ImportRaw(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/import")
	if got := dst.Status().Checkouts; got != 10_000 {
		b.Fatalf("standby holds %d checkouts after import, want 10000", got)
	}
}
