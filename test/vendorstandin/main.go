// Command vendorstandin is the fault suite's stand-in for a vendor license
// server (it is built into an image of its own, localhost/licenseha/e2e-vendor,
// and is no part of the licenseha image). It behaves as the awkward vendor
// servers do: it forks a child it never waits for, keeps its state in files
// of its data folder and writes them all the time, and ignores SIGTERM for a
// while, writing its state once more before it exits.
//
//	vendorstandin serve --data-dir DIR --listen :5160 --term-delay 3s
//	vendorstandin helper --data-dir DIR    a second supervised service
//	vendorstandin child                    the forked child (sleeps)
//
// serve answers GET /state with JSON {member, counter, startedFrom,
// rewritten}: counter counts up every 100 ms from the value of
// DIR/vendor/db/counter at start (startedFrom), which it rewrites at every
// step; rewritten counts the times it found that file changed by someone
// else while it ran.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vendorstandin serve|helper|child [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "child":
		signal.Ignore(syscall.SIGTERM)
		for {
			time.Sleep(time.Hour)
		}
	case "helper":
		helper(os.Args[2:])
	case "serve":
		serve(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(2)
	}
}

// helper writes a heartbeat file every 100 ms.
func helper(args []string) {
	fs := flag.NewFlagSet("helper", flag.ExitOnError)
	dir := fs.String("data-dir", "/var/lib/licenseha", "data folder")
	_ = fs.Parse(args)
	for {
		_ = os.WriteFile(filepath.Join(*dir, "helper.beat"), []byte(time.Now().Format(time.RFC3339Nano)), 0o644)
		time.Sleep(100 * time.Millisecond)
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("data-dir", "/var/lib/licenseha", "data folder")
	listen := fs.String("listen", ":5160", "address of GET /state")
	termDelay := fs.Duration("term-delay", 3*time.Second, "how long SIGTERM is ignored")
	_ = fs.Parse(args)

	db := filepath.Join(*dir, "vendor", "db")
	if err := os.MkdirAll(db, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	start := readCounter(filepath.Join(db, "counter"))
	var counter atomic.Int64
	counter.Store(start)

	// A child this process never waits for: when the process group is
	// stopped it dies too and is left to whoever reaps orphans.
	self, _ := os.Executable()
	if err := exec.Command(self, "child").Start(); err != nil {
		fmt.Fprintln(os.Stderr, "forking the child:", err)
	}

	// rewritten counts the times the counter file held something else
	// than this process last wrote: someone wrote under the running server.
	var rewritten atomic.Int64
	var mu sync.Mutex
	lastWritten := strconv.FormatInt(start, 10)
	write := func() {
		mu.Lock()
		defer mu.Unlock()
		p := filepath.Join(db, "counter")
		if b, err := os.ReadFile(p); err == nil && string(b) != lastWritten {
			rewritten.Add(1)
			fmt.Printf("counter file rewritten under the server: %q, last written %q\n", b, lastWritten)
		}
		tmp := p + ".tmp"
		next := strconv.FormatInt(counter.Load(), 10)
		if os.WriteFile(tmp, []byte(next), 0o644) == nil && os.Rename(tmp, p) == nil {
			lastWritten = next
		}
	}
	go func() {
		for {
			time.Sleep(100 * time.Millisecond)
			counter.Add(1)
			write()
		}
	}()

	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	go func() {
		<-terms
		fmt.Println("SIGTERM ignored for", *termDelay)
		time.Sleep(*termDelay)
		write()
		_ = os.WriteFile(filepath.Join(db, "last-words"), []byte(strconv.FormatInt(counter.Load(), 10)), 0o644)
		os.Exit(0)
	}()

	member, _ := os.Hostname()
	if pod := os.Getenv("POD_NAME"); pod != "" {
		member = pod
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"member": member, "counter": counter.Load(), "startedFrom": start, "rewritten": rewritten.Load()})
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 2 * time.Second}
	fmt.Println("serving", *listen, "from counter", start)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func readCounter(p string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}
