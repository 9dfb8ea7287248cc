package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/snapshot"
)

// Defaults of the Config limits.
const (
	DefaultPageSize       = 50
	DefaultMaxPageSize    = 500
	DefaultMaxScan        = 100_000
	DefaultMaxTail        = 8
	DefaultRequestTimeout = 10 * time.Second
)

// Errors returned by New.
var (
	// ErrNoJournal: Config.Journal is nil.
	ErrNoJournal = errors.New("console: Config.Journal is required")
	// ErrNoAuthorize: Config.EnableWrites is set without an Authorize hook
	// (and without InsecureWritesWithoutAuthorize).
	ErrNoAuthorize = errors.New("console: writes enabled without an Authorize hook; set Config.Authorize (or, for a local test, InsecureWritesWithoutAuthorize)")
	// ErrInvalidConfig: a Config field is out of range.
	ErrInvalidConfig = errors.New("console: invalid config")
)

// Action names a mutating operation a request asks for.
type Action struct {
	// Name is the operation: "projection.start", "projection.stop",
	// "projection.skip" or "projection.rebuild".
	Name string
	// Target is what it applies to (the projection's name).
	Target string
}

// Config configures a Console. The zero value, with Journal set, serves a
// read-only console to requests whose Host is localhost, 127.0.0.1 or
// [::1].
type Config struct {
	// Journal is the journal to show. Required. Stream listing needs a
	// journal.StreamLister, the live tail a journal.Watcher, the integrity
	// check a journal.Checker; pages for a missing capability say so.
	Journal journal.Journal
	// Registry decodes payloads for the decoded view of an event (with
	// its upcasters and codec, e.g. a pii codec that reads erased
	// subjects' fields as erased). Nil shows the stored form only.
	Registry *orchestrix.Registry
	// Projections, when set, shows the projections of this manager.
	Projections *projection.Manager
	// Aggregates lists the aggregate kinds whose past states the console
	// can show (time travel); build each with Aggregate(handle).
	Aggregates []AggregateView
	// Sagas lists the orchestrations whose runner-side state (the
	// attempts at the current step) the saga pages show; build each with
	// Saga(s). Sagas not listed are shown from their streams alone.
	Sagas []SagaView
	// Snapshots, when set, is the snapshot store of the aggregates: the
	// time-travel page marks the versions that have a snapshot.
	Snapshots snapshot.Store

	// EnableWrites turns on the mutating routes (projection Start, Stop,
	// Skip, Rebuild). They are POST only, pass Go's cross-origin
	// protection and Authorize, and are logged with the principal.
	EnableWrites bool
	// Authorize decides whether r may perform action; it returns the
	// principal to log, or an error (the request gets 403 with it).
	// Required when EnableWrites is set.
	Authorize func(r *http.Request, action Action) (principal string, err error)
	// InsecureWritesWithoutAuthorize lets EnableWrites work without
	// Authorize: any client that reaches the console may mutate. Only for
	// local experiments.
	InsecureWritesWithoutAuthorize bool

	// AllowedHosts lists the host names (without port) a request's Host
	// header may name; others get 403, which defeats DNS rebinding. Empty
	// means localhost, 127.0.0.1 and ::1.
	AllowedHosts []string
	// TraceURL is a URL template for a traceparent link; "{trace}" is
	// replaced by the trace id (e.g. "http://localhost:16686/trace/{trace}").
	// Empty shows no link.
	TraceURL string

	// PageSize is the default number of rows per page (DefaultPageSize
	// when 0); MaxPageSize caps the limit a request may ask for
	// (DefaultMaxPageSize when 0).
	PageSize, MaxPageSize int
	// MaxScan caps the records one request reads while filtering or
	// searching (DefaultMaxScan when 0); the page then offers to continue.
	MaxScan int
	// MaxTail caps concurrent live-tail connections (DefaultMaxTail when
	// 0); more get 503.
	MaxTail int
	// RequestTimeout bounds each non-streaming request (DefaultRequestTimeout
	// when 0).
	RequestTimeout time.Duration
	// Clock times the lag samples of the projections (and reads "now"
	// for them); nil means orchestrix.SystemClock.
	Clock orchestrix.Clock
	// LagSampleEvery is how often each projection's lag is sampled for
	// the projections page's chart (DefaultLagSampleEvery when 0);
	// LagWindow how long samples are kept (DefaultLagWindow when 0).
	// Sampling runs only when Projections is set, until Close.
	LagSampleEvery, LagWindow time.Duration
	// Logger receives the log of mutating actions and of internal errors;
	// nil uses slog.Default().
	Logger *slog.Logger
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	if c.Journal == nil {
		return ErrNoJournal
	}
	if c.EnableWrites && c.Authorize == nil && !c.InsecureWritesWithoutAuthorize {
		return ErrNoAuthorize
	}
	if c.PageSize < 0 || c.MaxPageSize < 0 || c.MaxScan < 0 || c.MaxTail < 0 || c.RequestTimeout < 0 ||
		c.LagSampleEvery < 0 || c.LagWindow < 0 {
		return fmt.Errorf("%w: negative limit", ErrInvalidConfig)
	}
	if c.LagSampleEvery > 0 && c.LagWindow > 0 && c.LagWindow < c.LagSampleEvery {
		return fmt.Errorf("%w: LagWindow %v below LagSampleEvery %v", ErrInvalidConfig, c.LagWindow, c.LagSampleEvery)
	}
	if c.PageSize > 0 && c.MaxPageSize > 0 && c.PageSize > c.MaxPageSize {
		return fmt.Errorf("%w: PageSize %d above MaxPageSize %d", ErrInvalidConfig, c.PageSize, c.MaxPageSize)
	}
	for _, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ ") && !strings.Contains(h, "::") && !strings.HasPrefix(h, "[") {
			return fmt.Errorf("%w: allowed host %q (give a host name without port)", ErrInvalidConfig, h)
		}
	}
	return nil
}

//go:embed web
var webFS embed.FS

// Console is the web console: an http.Handler serving the pages and the
// JSON API. It is safe for concurrent use.
type Console struct {
	cfg   Config
	log   *slog.Logger
	hosts map[string]bool
	tmpl  map[string]*template.Template
	mux   *http.ServeMux
	tails chan struct{}
	// checking holds a token while an integrity check runs.
	checking chan struct{}
	lag      *lagSampler // nil without Config.Projections
}

// New returns a console for cfg, or an error when cfg is invalid.
func New(cfg Config) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.MaxPageSize == 0 {
		cfg.MaxPageSize = max(DefaultMaxPageSize, cfg.PageSize)
	}
	if cfg.MaxScan == 0 {
		cfg.MaxScan = DefaultMaxScan
	}
	if cfg.MaxTail == 0 {
		cfg.MaxTail = DefaultMaxTail
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = orchestrix.SystemClock{}
	}
	if cfg.LagSampleEvery == 0 {
		cfg.LagSampleEvery = DefaultLagSampleEvery
	}
	if cfg.LagWindow == 0 {
		cfg.LagWindow = max(DefaultLagWindow, cfg.LagSampleEvery)
	}
	c := &Console{cfg: cfg, log: cfg.Logger, hosts: map[string]bool{}, tails: make(chan struct{}, cfg.MaxTail), checking: make(chan struct{}, 1)}
	if c.log == nil {
		c.log = slog.Default()
	}
	hosts := cfg.AllowedHosts
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	for _, h := range hosts {
		c.hosts[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	c.routes()
	if cfg.Projections != nil {
		c.lag = newLagSampler(c)
	}
	return c, nil
}

// Close stops the console's background work (the projections' lag
// sampling). It does not close the journal or the projection manager.
// The handler keeps serving after Close, without new lag samples. Close
// is idempotent and returns nil.
func (c *Console) Close() error {
	if c.lag != nil {
		c.lag.stop()
	}
	return nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.Handle("GET /assets/", http.FileServerFS(mustSub(webFS, "web")))
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		seeOther(w, "streams")
	})
	m.HandleFunc("GET /streams", c.page("streams", c.streams))
	m.HandleFunc("GET /stream", c.page("stream", c.stream))
	m.HandleFunc("GET /event", c.page("event", c.event))
	m.HandleFunc("GET /projections", c.page("projections", c.projections))
	m.HandleFunc("GET /aggregate", c.page("aggregate", c.aggregate))
	m.HandleFunc("GET /search", c.page("search", c.search))
	m.HandleFunc("GET /sagas", c.page("sagas", c.sagas))
	m.HandleFunc("GET /check", c.page("check", c.check))
	m.HandleFunc("GET /saga", c.page("saga", c.sagaDetail))
	m.HandleFunc("GET /stats", c.page("stats", c.stats))
	m.HandleFunc("GET /processes", c.page("processes", c.processes))
	m.HandleFunc("GET /process", c.page("process", c.processDetail))
	m.HandleFunc("GET /tail", c.page("tail", func(*http.Request) (any, error) { return struct{}{}, nil }))

	m.HandleFunc("GET /api/streams", c.api(c.streams))
	m.HandleFunc("GET /api/events", c.api(c.stream))
	m.HandleFunc("GET /api/event", c.api(c.event))
	m.HandleFunc("GET /api/projections", c.api(c.projections))
	m.HandleFunc("GET /api/aggregate", c.api(c.aggregate))
	m.HandleFunc("GET /api/search", c.api(c.search))
	m.HandleFunc("GET /api/sagas", c.api(c.sagas))
	m.HandleFunc("GET /api/check", c.api(c.check))
	m.HandleFunc("GET /api/saga", c.api(c.sagaDetail))
	m.HandleFunc("GET /api/stats", c.api(c.stats))
	m.HandleFunc("GET /api/export", c.export)
	m.HandleFunc("GET /api/processes", c.api(c.processes))
	m.HandleFunc("GET /api/process", c.api(c.processDetail))
	m.HandleFunc("GET /api/tail", c.tail)

	if c.cfg.EnableWrites {
		cop := http.NewCrossOriginProtection()
		m.Handle("POST /projections/{name}/{action}", cop.Handler(http.HandlerFunc(c.projectionAction(false))))
		m.Handle("POST /api/projections/{name}/{action}", cop.Handler(http.HandlerFunc(c.projectionAction(true))))
	}
	c.mux = m
}

// ServeHTTP serves the console. Mount it under a prefix with
// http.StripPrefix; every link in the pages is relative.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if !c.hostAllowed(r.Host) {
		http.Error(w, "console: host "+r.Host+" is not allowed (Config.AllowedHosts)", http.StatusForbidden)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/assets/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

func (c *Console) hostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return c.hosts[strings.ToLower(strings.Trim(host, "[]"))]
}

// requestError is an error caused by the request: it is shown to the
// client with its status.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &requestError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

// status maps err to an HTTP status and a message safe to show.
func (c *Console) status(r *http.Request, err error) (int, string) {
	var re *requestError
	switch {
	case errors.As(err, &re):
		return re.status, re.msg
	case errors.Is(err, orchestrix.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "console: request timed out"
	case errors.Is(err, orchestrix.ErrClosed):
		return http.StatusServiceUnavailable, "console: the journal is closed"
	}
	c.log.ErrorContext(r.Context(), "console: request failed", "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, "console: internal error: " + err.Error()
}

func (c *Console) withTimeout(r *http.Request) (*http.Request, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.RequestTimeout)
	return r.WithContext(ctx), cancel
}

// seeOther redirects to a relative location as written (http.Redirect
// would make it absolute, which breaks a console mounted under a prefix).
func seeOther(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusSeeOther)
}
