// Package obs gives the example programs their observability flags:
//
//	-metrics ADDR   serve Prometheus metrics on http://ADDR/metrics
//	-trace          print OpenTelemetry spans as JSON on standard output
//	-console ADDR   at the end of the run, serve the web console on
//	                http://ADDR/ until interrupted
//
// It is example code: the library itself never installs an exporter or
// registers anything globally. Metrics go to a private
// prometheus.Registry (with the Go runtime and process collectors) and
// spans to the stdouttrace exporter of the OpenTelemetry SDK.
//
//	flags := obs.Flags(flag.CommandLine)
//	flag.Parse()
//	o, err := flags.Start(os.Stdout, os.Stderr)
//	defer o.Shutdown(ctx)
//	sys, err := actor.NewSystem(actor.Config{Journal: j, Metrics: o.Metrics(), TracerProvider: o.TracerProvider()})
package obs

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/telemetry"
)

// Settings holds the values of the flags that Flags registers. Read them
// only after the flag set has been parsed.
type Settings struct {
	// MetricsAddr is the -metrics address; empty means no metrics.
	MetricsAddr string
	// Trace is the -trace switch.
	Trace bool
	// ConsoleAddr is the -console address; empty means no console.
	ConsoleAddr string
}

// Flags registers -metrics and -trace on fs and returns the settings they
// fill in when fs is parsed.
func Flags(fs *flag.FlagSet) *Settings {
	s := &Settings{}
	fs.StringVar(&s.MetricsAddr, "metrics", "", "serve Prometheus metrics on http://`ADDR`/metrics (for example 127.0.0.1:9090; port 0 picks a free one)")
	fs.StringVar(&s.ConsoleAddr, "console", "", "serve the web console on http://`ADDR`/ at the end of the run, until interrupted (for example 127.0.0.1:8089)")
	fs.BoolVar(&s.Trace, "trace", false, "print OpenTelemetry spans (orchestrix.command, journal commits, projection batches) as JSON on standard output")
	return s
}

// Obs is the running observability set-up of an example. A nil *Obs is
// valid and means "neither flag given": Metrics and TracerProvider return
// nil (no metrics; the global, non-recording tracer provider) and Shutdown
// does nothing.
type Obs struct {
	registry *prometheus.Registry
	metrics  *telemetry.Metrics
	server   *http.Server
	addr     string
	served   chan struct{} // closed when Serve has returned
	serveErr error         // Serve's result, set before served is closed
	tp       *sdktrace.TracerProvider

	consoleAddr string
}

// Start applies the settings. With -metrics it registers the Orchestrix
// metrics on a private registry and starts serving /metrics on the
// address (say where on info; nil info prints nothing); with -trace it
// installs an SDK tracer provider that writes every finished span, as
// JSON, to spans. Neither flag: Start returns (nil, nil), a valid *Obs.
// Call Shutdown when done, which flushes pending spans.
func (s *Settings) Start(spans, info io.Writer) (*Obs, error) {
	if s == nil || (s.MetricsAddr == "" && !s.Trace && s.ConsoleAddr == "") {
		return nil, nil
	}
	o := &Obs{consoleAddr: s.ConsoleAddr}
	if s.MetricsAddr != "" {
		o.registry = prometheus.NewRegistry()
		if err := o.registry.Register(collectors.NewGoCollector()); err != nil {
			return nil, err
		}
		if err := o.registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, err
		}
		m, err := telemetry.NewMetrics(o.registry)
		if err != nil {
			return nil, err
		}
		o.metrics = m
		ln, err := net.Listen("tcp", s.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("obs: -metrics %s: %w", s.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(o.registry, promhttp.HandlerOpts{Registry: o.registry}))
		o.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		o.addr = ln.Addr().String()
		o.served = make(chan struct{})
		go func() {
			o.serveErr = o.server.Serve(ln)
			close(o.served)
		}()
		if info != nil {
			fmt.Fprintf(info, "metrics: http://%s/metrics\n", o.addr)
		}
	}
	if s.Trace {
		if spans == nil {
			spans = io.Discard
		}
		exp, err := stdouttrace.New(stdouttrace.WithWriter(spans), stdouttrace.WithPrettyPrint())
		if err != nil {
			return nil, errors.Join(err, o.Shutdown(context.Background()))
		}
		// A batcher keeps the spans in blocks rather than between every
		// line of the example's own output; Shutdown flushes it.
		o.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	}
	return o, nil
}

// Metrics returns the Orchestrix metrics to give to actor.Config.Metrics,
// projection.Config.Metrics and journal options; nil without -metrics.
func (o *Obs) Metrics() *telemetry.Metrics {
	if o == nil {
		return nil
	}
	return o.metrics
}

// Registry returns the private Prometheus registry /metrics serves; nil
// without -metrics.
func (o *Obs) Registry() *prometheus.Registry {
	if o == nil {
		return nil
	}
	return o.registry
}

// TracerProvider returns the provider to give to actor.Config,
// projection.Config and journal options; nil without -trace, which makes
// Orchestrix use the global provider (non-recording unless the program
// installs an SDK).
func (o *Obs) TracerProvider() trace.TracerProvider {
	if o == nil || o.tp == nil {
		return nil
	}
	return o.tp
}

// MetricsAddr returns the address /metrics is served on (the port chosen
// when -metrics asked for port 0); empty without -metrics.
func (o *Obs) MetricsAddr() string {
	if o == nil {
		return ""
	}
	return o.addr
}

// Hold blocks until ctx ends when metrics are being served, so that a
// short demo can still be scraped after it has finished; without -metrics
// it returns at once. It says so on info (when not nil).
func (o *Obs) Hold(ctx context.Context, info io.Writer) {
	if o == nil || o.server == nil {
		return
	}
	if info != nil {
		fmt.Fprintf(info, "serving http://%s/metrics until interrupted (Ctrl-C)\n", o.addr)
	}
	select {
	case <-ctx.Done():
	case <-o.served:
	}
}

// Shutdown flushes and stops the tracer provider and stops the metrics
// server, waiting at most until ctx ends.
func (o *Obs) Shutdown(ctx context.Context) error {
	if o == nil {
		return nil
	}
	var errs []error
	if o.tp != nil {
		errs = append(errs, o.tp.Shutdown(ctx))
	}
	if o.server != nil {
		errs = append(errs, o.server.Shutdown(ctx))
		select {
		case <-o.served:
			if !errors.Is(o.serveErr, http.ErrServerClosed) {
				errs = append(errs, o.serveErr)
			}
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
		}
	}
	return errors.Join(errs...)
}

// Console serves the web console for cfg on the -console address and
// blocks until ctx ends (or the server fails), then stops it; without
// -console it returns at once. An example calls it at the end of its run,
// while its journal and projections are still open. It says where on info
// (when not nil).
func (o *Obs) Console(ctx context.Context, cfg console.Config, info io.Writer) error {
	if o == nil || o.consoleAddr == "" {
		return nil
	}
	c, err := console.New(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	ln, err := net.Listen("tcp", o.consoleAddr)
	if err != nil {
		return fmt.Errorf("obs: -console %s: %w", o.consoleAddr, err)
	}
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if info != nil {
		fmt.Fprintf(info, "console: http://%s/ until interrupted (Ctrl-C)\n", ln.Addr())
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Interrupted returns a context that ends on Ctrl-C (os.Interrupt), for
// Console; call stop when done.
func Interrupted() (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

// ConsoleAddr returns the -console address; empty without -console.
func (o *Obs) ConsoleAddr() string {
	if o == nil {
		return ""
	}
	return o.consoleAddr
}
