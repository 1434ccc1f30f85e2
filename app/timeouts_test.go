package app

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// liveServer serves s through its own HTTPServer (with its timeouts) on a
// loopback port.
func liveServer(t *testing.T, m *Loaded, cfg Config) (*Server, string) {
	t.Helper()
	cfg.Logger = quiet
	s, err := New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer()
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		_ = hs.Close()
	})
	return s, ln.Addr().String()
}

func TestTimeoutsCutSlowAndIdleClientsButNotJobsOrStreams(t *testing.T) {
	const limit = 300 * time.Millisecond
	m, f := gatedFake()
	_, addr := liveServer(t, m, Config{ReadTimeout: limit, WriteTimeout: limit, IdleTimeout: limit})

	// A client that sends its body slower than the read timeout is cut off.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"prompt":"a cat","steps":1}`
	_, _ = io.WriteString(conn, "POST /api/v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body[:5])
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, _ := io.ReadAll(conn)
	if took := time.Since(start); took > 3*time.Second || strings.Contains(string(resp), "200 OK") {
		t.Errorf("slow body: connection open %v, answer %q", took, resp)
	}
	if f.calls.Load() != 0 {
		t.Error("a truncated body ran a job")
	}

	// An idle kept-alive connection is closed after the idle timeout.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_, _ = io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	br := bufio.NewReader(idle)
	if r, err := http.ReadResponse(br, nil); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", r, err)
	} else {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	start = time.Now()
	if _, err := br.ReadByte(); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("idle connection: read %v after %v, want it closed by the server", err, time.Since(start))
	}

	// A synchronous request whose job takes longer than the write timeout
	// still gets its answer, and an event stream outlives it.
	done := make(chan response, 1)
	go func() {
		done <- call(t, "POST", "http://"+addr+"/api/v1/generate", `{"prompt":"a cat","steps":2}`)
	}()
	<-f.started
	time.Sleep(2 * limit)
	f.gate <- struct{}{}
	time.Sleep(2 * limit)
	f.gate <- struct{}{}
	if r := <-done; r.Status != http.StatusOK {
		t.Errorf("slow job: %d %s", r.Status, r.Body)
	}

	jr := call(t, "POST", "http://"+addr+"/api/v1/jobs", `{"prompt":"a cat","steps":2}`)
	id, _ := jr.json(t)["id"].(string)
	events := make(chan string, 1)
	go func() {
		r := call(t, "GET", "http://"+addr+"/api/v1/jobs/"+id+"/events", nil)
		events <- string(r.Body)
	}()
	<-f.started
	time.Sleep(2 * limit)
	f.gate <- struct{}{}
	time.Sleep(2 * limit)
	f.gate <- struct{}{}
	if ev := <-events; !strings.Contains(ev, "event: done") || !strings.Contains(ev, `"state":"succeeded"`) {
		t.Errorf("event stream cut short: %q", ev)
	}
}

func TestOpenAIURLsNameTheServerNotTheRequestHost(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	body := `{"prompt":"a cat","size":"64x64","steps":1}`
	r := send(t, "POST", ts.URL+"/v1/images/generations", "203.0.113.9:80", "application/json", body, "X-Forwarded-Proto", "https")
	url, _ := get(map[string]any{"d": r.json(t)["data"].([]any)[0]}, "d", "url").(string)
	if !strings.HasPrefix(url, ts.URL+"/v1/files/") {
		t.Errorf("url %q does not name the server's address %s", url, ts.URL)
	}
	if g := call(t, "GET", url, nil); g.Status != http.StatusOK {
		t.Errorf("GET %s: %d", url, g.Status)
	}
	_, ts2 := testServer(t, fake(), Config{PublicURL: "https://ldm.example.org/base/"})
	r = send(t, "POST", ts2.URL+"/v1/images/generations", "", "application/json", body)
	url, _ = get(map[string]any{"d": r.json(t)["data"].([]any)[0]}, "d", "url").(string)
	if !strings.HasPrefix(url, "https://ldm.example.org/base/v1/files/") {
		t.Errorf("url %q does not start with the public URL", url)
	}
}
