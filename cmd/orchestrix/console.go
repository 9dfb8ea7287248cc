package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/orchestrix/orchestrix/console"
)

var consoleCommand = &command{
	name:    "console",
	args:    "[--addr HOST:PORT] [--allow-host NAME,...] [--trace-url URL]",
	summary: "serve the read-only web console for a stopped service's journal",
	help: `
Serves the web console (package console) for the journal named by --data
or --pg, read-only: streams, events (the stored form; payload types are
not known here, so there is no decoded form), the live tail and the JSON
API under /api/. Open the printed address in a browser; stop with Ctrl-C.

A bbolt file is opened read-only (bbolt's read-only mode under a shared
lock): nothing in it is changed, and several consoles may share it, but
not with the running service, which holds it exclusively (a running
service mounts the console itself). It
listens on 127.0.0.1:8089 by default and warns when --addr is not a
loopback address. Requests must name one of the allowed hosts (default
localhost, 127.0.0.1, ::1; add names with --allow-host) in their Host
header, which defeats DNS rebinding.`,
	setFlags: func(fs *flag.FlagSet) func(*app, []string) error {
		addr := fs.String("addr", "127.0.0.1:8089", "`HOST:PORT` to listen on")
		hosts := fs.String("allow-host", "", "comma-separated extra host `NAMES` the Host header may name")
		traceURL := fs.String("trace-url", "", "trace link `TEMPLATE`, {trace} replaced by the trace id")
		return func(a *app, args []string) (err error) {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			host, _, splitErr := net.SplitHostPort(*addr)
			if splitErr != nil {
				return usagef("--addr %q: %v", *addr, splitErr)
			}
			allowed := []string{"localhost", "127.0.0.1", "::1"}
			for _, h := range strings.Split(*hosts, ",") {
				if h = strings.TrimSpace(h); h != "" {
					allowed = append(allowed, h)
				}
			}
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				fmt.Fprintf(a.stderr, "orchestrix console: warning: listening on %s, not a loopback address: anyone who can reach it can read every event\n", *addr)
			}
			s, err := a.openReadOnly()
			if err != nil {
				return err
			}
			defer closeStore(s, &err)
			c, err := console.New(console.Config{
				Journal: s.Journal, AllowedHosts: allowed, TraceURL: *traceURL,
				Logger: slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
			})
			if err != nil {
				return usagef("%v", err)
			}
			ln, err := net.Listen("tcp", *addr)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(a.stderr, "orchestrix console: serving %s on http://%s/ (read-only; Ctrl-C stops)\n", a.describe(), ln.Addr())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			select {
			case err := <-done:
				return err
			case <-a.ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				_ = srv.Close()
			}
			if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}
	},
}
