package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// kubeletPort is where the node agent serves the part of the kubelet API
// the API server proxies "kubectl logs" to. All nodes share it: they share
// the bridge address.
const kubeletPort = 10250

// runStartMarker starts the line the agent writes into a container's log
// before each run, so that logs can be cut into runs like the kubelet's
// current and previous log.
const runStartMarker = "--- localcluster: starting "

// serveKubeletAPI serves /containerLogs until ctx ends. The API server
// authenticates with its kubelet client certificate; like a kubelet with
// webhook authorization disabled, the agent does not check it.
func serveKubeletAPI(ctx context.Context, l layout) error {
	cert, err := tls.LoadX509KeyPair(l.paths().PKI("kubelet.crt"), l.paths().PKI("kubelet.key"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(bridgeIP, strconv.Itoa(kubeletPort)))
	if err != nil {
		return fmt.Errorf("kubelet API: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		path := filepath.Join(l.podLogDir(r.PathValue("namespace"), r.PathValue("pod")), r.PathValue("container")+".log")
		if err := streamLog(r.Context(), w, path, r.URL.Query()); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
		}
	})
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("kubelet API: %v", err)
		}
	}()
	return nil
}

// streamLog writes the current run of a container's log (or the previous
// one), optionally only its last lines, and with follow keeps writing what
// the container adds until the client goes away.
func streamLog(ctx context.Context, w http.ResponseWriter, path string, q map[string][]string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("no log for this container (yet)")
	}
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	runs := splitRuns(data)
	run := runs[len(runs)-1]
	if get("previous") == "true" {
		if len(runs) < 2 {
			return fmt.Errorf("previous terminated container not found")
		}
		run = runs[len(runs)-2]
	}
	if n, err := strconv.Atoi(get("tailLines")); err == nil {
		run = lastLines(run, n)
	}
	w.Header().Set("Content-Type", "text/plain")
	if _, err := w.Write(run); err != nil || get("follow") != "true" || get("previous") == "true" {
		return nil
	}
	return follow(ctx, w, path, int64(len(data)))
}

// splitRuns cuts a log at the run markers, dropping the markers.
func splitRuns(data []byte) [][]byte {
	runs := [][]byte{{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte(runStartMarker)) {
			runs = append(runs, []byte{})
			continue
		}
		runs[len(runs)-1] = append(append(runs[len(runs)-1], line...), '\n')
	}
	if len(runs) > 1 {
		runs = runs[1:] // output before the first marker belongs to no run
	}
	return runs
}

func lastLines(b []byte, n int) []byte {
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	return []byte(strings.Join(lines, ""))
}

// follow copies what is appended to path from offset on, until ctx ends or
// the container restarts (a new run marker appears).
func follow(ctx context.Context, w http.ResponseWriter, path string, offset int64) error {
	flusher, _ := w.(http.Flusher)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		_, _ = f.Seek(offset, io.SeekStart)
		more, _ := io.ReadAll(f)
		f.Close()
		offset += int64(len(more))
		if i := bytes.Index(more, []byte(runStartMarker)); i >= 0 {
			_, _ = w.Write(more[:i])
			return nil
		}
		if len(more) > 0 {
			if _, err := w.Write(more); err != nil {
				return nil
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}
