// Package localcluster runs a cluster of Orchestrix members on this
// machine, one process each, for the cluster example and the cluster
// benchmark (go run ./examples/cluster, go run ./bench cluster).
//
// The program starts itself again once per member (Start): a member
// process finds its settings with Self, starts its cluster.Member with
// Spec.Config and serves a small control API over HTTP on 127.0.0.1
// (Spec.Serve) through which the program that started it drives it
// (Member.Call). Members are started with a parent-death signal, so they
// do not outlive the program.
//
// protoactor-go's automanaged provider binds its health server to every
// interface (0.0.0.0, hard-coded). EnterNetns therefore moves the whole
// program into a new network namespace that has only a loopback interface
// (unshare -n, which needs root) before anything listens: inside it,
// nothing is reachable from, or reaches, any other host. Without root the
// program can still run on 127.0.0.1; what that exposes is stated in
// Exposure.
package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orchestrix/orchestrix/cluster"
)

const (
	// envNetns is "1" in a process that runs inside the loopback-only
	// namespace EnterNetns created.
	envNetns = "ORCHESTRIX_LOCALCLUSTER_NETNS"
	// envMember holds a member process's Spec, JSON-encoded.
	envMember = "ORCHESTRIX_LOCALCLUSTER_MEMBER"
)

// Exposure says what a cluster started by this package makes reachable
// from other hosts when it runs outside a loopback-only namespace.
const Exposure = "automanaged's health server listens on 0.0.0.0 (hard-coded in protoactor-go) at one port per member; " +
	"it answers GET /_health with the member's id, its 127.0.0.1 address, ports and kind names, and accepts nothing else. " +
	"Membership is the fixed list of 127.0.0.1 seeds, so no other host can join; the members' remote endpoints, " +
	"control servers and the throwaway PostgreSQL listen on 127.0.0.1 only"

// Isolated reports whether this process runs inside the loopback-only
// network namespace that EnterNetns created.
func Isolated() bool { return os.Getenv(envNetns) == "1" }

// EnterNetns runs this program again inside a new network namespace that
// has only a loopback interface, with the same arguments and environment,
// and exits with its status; it returns only when it cannot, saying why,
// or, with "", when this process already runs inside one. It needs root
// (unshare -n) and iproute2's ip (to bring lo up).
//
// Call it first thing in main, before anything listens or connects: a
// server outside the namespace is reachable from inside only through a
// unix socket (a PostgreSQL DSN with host=/var/run/postgresql), never
// through a TCP address, 127.0.0.1 included.
func EnterNetns() (reason string) {
	if Isolated() {
		return ""
	}
	if reason := netnsUnavailable(); reason != "" {
		return reason
	}
	unshare, _ := exec.LookPath("unshare")
	ip, _ := exec.LookPath("ip")
	self, err := os.Executable()
	if err != nil {
		return "cannot find this program's executable: " + err.Error()
	}
	args := append([]string{"-n", "sh", "-c", `"$1" link set lo up && shift && exec "$@"`, "sh", ip, self}, os.Args[1:]...)
	cmd := exec.Command(unshare, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envNetns+"=1")
	// An interrupt reaches the program inside too (same process group);
	// wait for it to finish instead of dying first. Notify, not Ignore: an
	// ignored signal would stay ignored in the child.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	err = cmd.Run()
	signal.Stop(sigs)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			os.Exit(128 + int(ws.Signal()))
		}
		os.Exit(ee.ExitCode())
	case err != nil:
		return "running inside a network namespace: " + err.Error()
	}
	os.Exit(0)
	return ""
}

// Spec is what a member process is told about itself.
type Spec struct {
	// Index is the member's position among those Start started, from 0.
	Index int `json:"index"`
	// Port is its remote endpoint's port, AutoManagedPort its automanaged
	// health server's, Seeds every member's health server.
	Port            int      `json:"port"`
	AutoManagedPort int      `json:"automanaged_port"`
	Seeds           []string `json:"seeds"`
	// Control is the 127.0.0.1 address of its control HTTP server.
	Control string `json:"control"`
	// Params are the starting program's own settings (Options.Params).
	Params map[string]string `json:"params"`
}

// Self returns this process's Spec when it is a member started by Start.
func Self() (Spec, bool, error) {
	raw, ok := os.LookupEnv(envMember)
	if !ok {
		return Spec{}, false, nil
	}
	var s Spec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return Spec{}, true, fmt.Errorf("localcluster: bad %s: %w", envMember, err)
	}
	return s, true, nil
}

// Config is the cluster.Config of the member: its endpoint on 127.0.0.1,
// automanaged over every member's health server. The caller sets the
// timing fields.
func (s Spec) Config() cluster.Config {
	return cluster.Config{Host: "127.0.0.1", Port: s.Port, AutoManagedPort: s.AutoManagedPort, Seeds: s.Seeds}
}

// Serve serves h on the member's control address until the process ends.
func (s Spec) Serve(h http.Handler) error {
	srv := &http.Server{Addr: s.Control, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// Handle registers, on mux, a JSON endpoint at path: it decodes the
// request body into In (an empty body leaves the zero value), calls f with
// the request's context, and writes its result as JSON, or its error as
// status 500 with the error text.
func Handle[In, Out any](mux *http.ServeMux, path string, f func(context.Context, In) (Out, error)) {
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		var in In
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil && !errors.Is(err, io.EOF) {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out, err := f(r.Context(), in)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

// Ready is what a member's /ready endpoint answers.
type Ready struct {
	Address string `json:"address"`
	Members int    `json:"members"`
	// Fenced: the member fenced itself (it serves nothing and places its
	// own callers on the others; a member that started before a majority
	// of the others is fenced until it has a fresh view).
	Fenced bool `json:"fenced"`
}

// HandleReady registers /ready on mux, answering m's address, how many
// members it sees and whether it is fenced. Start waits on it.
func HandleReady(mux *http.ServeMux, m *cluster.Member) {
	Handle(mux, "/ready", func(context.Context, struct{}) (Ready, error) {
		_, fenced := m.Fenced()
		return Ready{Address: m.Address(), Members: m.Members(), Fenced: fenced}, nil
	})
}

// Options says what Start starts.
type Options struct {
	// Members is how many member processes to start.
	Members int
	// Params are passed to every member (Spec.Params).
	Params map[string]string
	// LogDir receives each member's output as member-<index>.log.
	LogDir string
	// ReadyTimeout bounds the wait until every member sees all the
	// others. Default 60s.
	ReadyTimeout time.Duration
}

// Member is a member process started by Start.
type Member struct {
	Spec
	// Address is the member's cluster address (host:port of its remote
	// endpoint), known once it is ready.
	Address string
	// Log is the file holding the member's output.
	Log string

	cmd    *exec.Cmd
	exited chan struct{}
}

var client = &http.Client{Timeout: 5 * time.Minute}

// Start starts opts.Members processes of this program as members of one
// cluster and returns once each of them sees all of them. On an error it
// kills those it started.
func Start(ctx context.Context, opts Options) ([]*Member, error) {
	n := opts.Members
	if n <= 0 {
		return nil, errors.New("localcluster: Options.Members must be positive")
	}
	ports, err := freePorts(3 * n)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("localcluster: finding this program: %w", err)
	}
	var seeds []string
	for i := range n {
		seeds = append(seeds, "127.0.0.1:"+strconv.Itoa(ports[n+i]))
	}
	var ms []*Member
	fail := func(err error) ([]*Member, error) {
		StopAll(ms, 0)
		return nil, err
	}
	for i := range n {
		spec := Spec{Index: i, Port: ports[i], AutoManagedPort: ports[n+i], Seeds: seeds,
			Control: "127.0.0.1:" + strconv.Itoa(ports[2*n+i]), Params: opts.Params}
		raw, err := json.Marshal(spec)
		if err != nil {
			return fail(err)
		}
		m := &Member{Spec: spec, Log: filepath.Join(opts.LogDir, fmt.Sprintf("member-%d.log", i)), exited: make(chan struct{})}
		logf, err := os.Create(m.Log)
		if err != nil {
			return fail(fmt.Errorf("localcluster: %w", err))
		}
		m.cmd = exec.Command(self, os.Args[1:]...)
		m.cmd.Stdout, m.cmd.Stderr = logf, logf
		m.cmd.Env = append(os.Environ(), envMember+"="+string(raw))
		m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := m.cmd.Start(); err != nil {
			logf.Close()
			return fail(fmt.Errorf("localcluster: starting member %d: %w", i, err))
		}
		go func() { _ = m.cmd.Wait(); logf.Close(); close(m.exited) }()
		ms = append(ms, m)
	}
	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := WaitMembers(wctx, ms, n); err != nil {
		return fail(err)
	}
	return ms, nil
}

// WaitMembers waits until each of ms is ready, sees want members and is
// not fenced, or until ctx ends, or one of them exits.
func WaitMembers(ctx context.Context, ms []*Member, want int) error {
	for _, m := range ms {
		for {
			var r Ready
			err := m.Call(ctx, "/ready", nil, &r)
			if err == nil {
				if m.Address == "" { // set once, by Start: read freely afterwards
					m.Address = r.Address
				}
				if r.Members == want && !r.Fenced {
					break
				}
				err = fmt.Errorf("it sees %d members (fenced: %v)", r.Members, r.Fenced)
			}
			select {
			case <-m.exited:
				return fmt.Errorf("localcluster: member %d exited before it was ready (%s):\n%s", m.Index, m.cmd.ProcessState, m.LogTail(2000))
			case <-ctx.Done():
				return fmt.Errorf("localcluster: member %d did not see %d members: %w (last: %v)\n%s", m.Index, want, ctx.Err(), err, m.LogTail(2000))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// Call posts in (nil: an empty body) as JSON to the member's control
// endpoint path and decodes the answer into out (nil: discarded).
func (m *Member) Call(ctx context.Context, path string, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+m.Control+path, body)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("member %d %s: %s: %s", m.Index, path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Kill sends SIGKILL to the member and waits until it is gone.
func (m *Member) Kill() error {
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-m.exited
	return nil
}

// Exited is closed once the member process has ended.
func (m *Member) Exited() <-chan struct{} { return m.exited }

// Stop ends the member: SIGTERM, then SIGKILL when it has not exited
// after grace (at once for a zero grace). It returns once it is gone.
func (m *Member) Stop(grace time.Duration) {
	if grace > 0 {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
			return
		case <-time.After(grace):
		}
	}
	_ = m.Kill()
}

// StopAll stops every member of ms at once (see Stop).
func StopAll(ms []*Member, grace time.Duration) {
	done := make(chan struct{}, len(ms))
	for _, m := range ms {
		go func() { m.Stop(grace); done <- struct{}{} }()
	}
	for range ms {
		<-done
	}
}

// LogTail returns the last n bytes of the member's output.
func (m *Member) LogTail(n int) string {
	b, _ := os.ReadFile(m.Log)
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("localcluster: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// RaceReports splits the data race reports in the member's output (a
// member built with -race prints them; it is usually killed, so its exit
// status cannot say so) as ClassifyRaces does.
func (m *Member) RaceReports() (ours []string, upstream int) {
	b, _ := os.ReadFile(m.Log)
	return ClassifyRaces(string(b))
}

// ClassifyRaces splits the race reports in a member's log into those
// whose racing accesses involve Orchestrix code and a count of those
// entirely inside dependencies (at the pinned protoactor-go version its
// BlockList, futures, gossip and remote shutdown race). An access is ours
// when, reading its stack from the innermost frame, the first frame of
// Orchestrix or protoactor-go code is Orchestrix's; runtime and standard
// library frames above it (a map access, reflect) do not decide.
// Goroutine creation stacks, which name our Start, do not count, and
// neither does our code further out: the main goroutine's Start calling
// protoactor-go, or the slog handler of package actor through which
// protoactor-go logs one of its own messages that another of its
// goroutines is writing.
func ClassifyRaces(log string) (ours []string, upstream int) {
	parts := strings.Split(log, "WARNING: DATA RACE")
	for _, rep := range parts[1:] {
		rep, _, _ = strings.Cut(rep, "==================")
		isOurs, inAccess := false, false
		for _, line := range strings.Split(rep, "\n") {
			trimmed := strings.TrimSpace(line)
			switch {
			case strings.Contains(trimmed, " at 0x") && strings.HasSuffix(trimmed, ":"):
				inAccess = true // "Write at 0x… by goroutine 9:", "Previous read at 0x… by main goroutine:"
			case trimmed == "" || strings.HasSuffix(trimmed, "created at:"):
				inAccess = false
			case inAccess && strings.HasPrefix(trimmed, "github.com/orchestrix/orchestrix"):
				isOurs, inAccess = true, false
			case inAccess && strings.HasPrefix(trimmed, "github.com/asynkron/protoactor-go"):
				inAccess = false
			}
		}
		if isOurs {
			ours = append(ours, rep)
		} else {
			upstream++
		}
	}
	return ours, upstream
}

// CheckRaces returns an error holding every race report in Orchestrix
// code from the output of ms (see RaceReports), or nil.
func CheckRaces(ms []*Member) error {
	var errs []error
	for _, m := range ms {
		ours, _ := m.RaceReports()
		for _, r := range ours {
			errs = append(errs, fmt.Errorf("member %d reported a data race in Orchestrix code:%s", m.Index, r))
		}
	}
	return errors.Join(errs...)
}
