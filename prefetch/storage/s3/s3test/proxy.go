package s3test

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Fault is what a Proxy does to one request.
type Fault int

const (
	// Pass forwards the request and its answer unchanged.
	Pass Fault = iota
	// SlowDown answers 503 SlowDown (S3's throttling) without forwarding.
	SlowDown
	// Reset forwards the request, sends the headers and the first half of
	// the body, then resets the connection (TCP RST).
	Reset
	// Stall forwards the request, sends the headers and the first half of
	// the body, then sends nothing more and holds the connection open
	// until the client closes it (or the proxy stops).
	Stall
	// Hang sends no answer at all, not even headers, and holds the
	// connection open until the client closes it (or the proxy stops).
	Hang
	// Drop resets the connection (TCP RST) before answering.
	Drop
	// InternalError answers 500 InternalError; Unavailable 503
	// ServiceUnavailable; Throttling 400 Throttling (retried for its code
	// alone); AccessDenied 403 AccessDenied (never retried). None of them
	// is forwarded.
	InternalError
	Unavailable
	Throttling
	AccessDenied
)

// s3Errors are the faults that answer with an S3 error: status and code.
var s3Errors = map[Fault]struct {
	status int
	code   string
}{
	SlowDown:      {http.StatusServiceUnavailable, "SlowDown"},
	InternalError: {http.StatusInternalServerError, "InternalError"},
	Unavailable:   {http.StatusServiceUnavailable, "ServiceUnavailable"},
	Throttling:    {http.StatusBadRequest, "Throttling"},
	AccessDenied:  {http.StatusForbidden, "AccessDenied"},
}

func (f Fault) String() string {
	switch f {
	case Pass:
		return "pass"
	case Reset:
		return "reset"
	case Stall:
		return "stall"
	case Hang:
		return "hang"
	case Drop:
		return "drop"
	}
	if e, ok := s3Errors[f]; ok {
		return e.code
	}
	return "Fault(" + strconv.Itoa(int(f)) + ")"
}

// Proxy is a reverse proxy in front of a Server that injects faults into
// object GETs and can hide ETags, as some S3-compatible stores do. Its
// methods are safe to call while it serves.
type Proxy struct {
	// URL is the proxy's endpoint, http://127.0.0.1:PORT.
	URL string

	target  *Server
	srv     *httptest.Server
	rp      *httputil.ReverseProxy
	closing chan struct{} // closed when the proxy stops: stalls end

	mu           sync.Mutex // guards the fields below
	stripETags   bool
	requests     int     // requests seen
	queue        []Fault // faults of the next requests, before the schedule
	schedule     []Fault // repeating faults of object GETs
	maxPerObject int     // faults the schedule gives one object at most
	gets         int     // object GETs seen
	perObject    map[string]int
	injected     map[Fault]int
}

// StartProxy starts a proxy in front of target; it stops when the test
// ends. It passes everything until told otherwise.
func StartProxy(t testing.TB, target *Server) *Proxy {
	t.Helper()
	u, err := url.Parse(target.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: target, closing: make(chan struct{}), perObject: map[string]int{}, injected: map[Fault]int{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // the signature covers the Host the client signed
		},
		ModifyResponse: p.modify,
		ErrorLog:       log.New(io.Discard, "", 0), // aborted copies are the point
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(p.closing) })
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

// Env returns the target's AWS variables with the endpoint pointed at the
// proxy, for a child process such as stokerd.
func (p *Proxy) Env() []string {
	var out []string
	for _, kv := range p.target.Env() {
		if strings.HasPrefix(kv, "AWS_ENDPOINT_URL_S3=") {
			kv = "AWS_ENDPOINT_URL_S3=" + p.URL
		}
		out = append(out, kv)
	}
	return out
}

// StripETags makes the proxy remove ETags from every answer: the ETag
// header of HEAD and GET, and the <ETag> elements of a List.
func (p *Proxy) StripETags(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stripETags = on
}

// Queue sets the faults of the next requests (of any kind: a body fault
// on a HEAD does nothing), one each, in order, before the schedule's; it
// starts the count of Requests afresh.
func (p *Proxy) Queue(faults ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queue, p.requests = append(faults[:0:0], faults...), 0
}

// Requests returns how many requests the proxy has had since the last
// Queue, and how many queued faults are still to come.
func (p *Proxy) Requests() (requests, queued int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests, len(p.queue)
}

// Schedule makes the n-th object GET (counting from now) get
// cycle[n%len(cycle)], except that one object gets at most maxPerObject
// faults from the schedule in all, so that a reader retrying more than
// maxPerObject times always gets its bytes. Nil turns the schedule off.
func (p *Proxy) Schedule(cycle []Fault, maxPerObject int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.schedule, p.maxPerObject, p.gets = append(cycle[:0:0], cycle...), maxPerObject, 0
	p.perObject = map[string]int{}
}

// Injected returns how many faults of each kind the proxy has injected.
func (p *Proxy) Injected() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Fault]int, len(p.injected))
	for f, n := range p.injected {
		out[f] = n
	}
	return out
}

// fault picks the fault of request r.
func (p *Proxy) fault(r *http.Request) Fault {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	f := Pass
	switch {
	case len(p.queue) > 0:
		f, p.queue = p.queue[0], p.queue[1:]
	case r.Method == http.MethodGet && key != "" && len(p.schedule) > 0:
		f = p.schedule[p.gets%len(p.schedule)]
		p.gets++
		if f != Pass {
			if p.perObject[bucket+"/"+key] >= p.maxPerObject {
				f = Pass
			} else {
				p.perObject[bucket+"/"+key]++
			}
		}
	}
	if f != Pass {
		p.injected[f]++
	}
	return f
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	f := p.fault(r)
	if e, ok := s3Errors[f]; ok {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(e.status)
		_, _ = w.Write([]byte("<Error><Code>" + e.code + "</Code><Message>injected by s3test.Proxy</Message></Error>"))
		return
	}
	switch f {
	case Pass:
		p.rp.ServeHTTP(w, r)
	case Drop:
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			resetConn(conn)
		}
	case Reset, Stall:
		p.rp.ServeHTTP(&faultWriter{ResponseWriter: w, fault: f, req: r, closing: p.closing}, r)
	case Hang:
		select {
		case <-r.Context().Done():
		case <-p.closing:
		}
		panic(http.ErrAbortHandler)
	}
}

// etagElem matches one <ETag> element of a List answer.
var etagElem = regexp.MustCompile(`<ETag>[^<]*</ETag>`)

// modify hides ETags when asked to.
func (p *Proxy) modify(resp *http.Response) error {
	p.mu.Lock()
	strip := p.stripETags
	p.mu.Unlock()
	if !strip {
		return nil
	}
	resp.Header.Del("ETag")
	_, key, _ := strings.Cut(strings.TrimPrefix(resp.Request.URL.Path, "/"), "/")
	if resp.Request.Method != http.MethodGet || key != "" {
		return nil // not a List
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	body = etagElem.ReplaceAll(body, nil)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// faultWriter lets the headers and the first half of the body through
// (half of Content-Length), then resets or stalls the connection.
type faultWriter struct {
	http.ResponseWriter
	fault   Fault
	req     *http.Request
	closing <-chan struct{}
	left    int64 // body bytes still let through; set at WriteHeader
}

func (w *faultWriter) WriteHeader(code int) {
	n, _ := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64)
	w.left = n / 2
	w.ResponseWriter.WriteHeader(code)
	if w.left == 0 {
		w.cut()
	}
}

func (w *faultWriter) Write(b []byte) (int, error) {
	if int64(len(b)) < w.left {
		w.left -= int64(len(b))
		return w.ResponseWriter.Write(b)
	}
	_, _ = w.ResponseWriter.Write(b[:w.left]) // cut flushes it or the client sees the cut sooner
	w.left = 0
	w.cut() // panics: http.ErrAbortHandler
	return 0, nil
}

// cut flushes what was let through, then resets or stalls; it ends the
// handler (http.ErrAbortHandler), so the rest of the body is never sent.
func (w *faultWriter) cut() {
	rc := http.NewResponseController(w.ResponseWriter)
	_ = rc.Flush()
	if w.fault == Reset {
		if conn, _, err := rc.Hijack(); err == nil {
			resetConn(conn)
		}
	} else {
		select {
		case <-w.req.Context().Done(): // the client gave up and closed
		case <-w.closing:
		}
	}
	panic(http.ErrAbortHandler)
}

// resetConn closes conn with a TCP RST.
func resetConn(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}
