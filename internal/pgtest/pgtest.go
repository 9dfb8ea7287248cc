// Package pgtest gives tests a PostgreSQL server without any setup.
//
// DSN returns a connection string for a fresh, empty database of its own.
// When ORCHESTRIX_PG_DSN is set, the databases are created on that server;
// otherwise one throwaway server is started per test process (initdb into a
// temporary directory, trust authentication, fsync on, a unix socket in the
// temporary directory and a free TCP port on 127.0.0.1), and stopped by Main
// when the tests are done. Start gives a test a server of its own that it
// can crash (Kill) and bring back on the same data directory (Restart).
//
// When the PostgreSQL binaries cannot be found (on PATH, or in
// /usr/lib/postgresql/*/bin) the test is skipped with the reason, unless
// ORCHESTRIX_REQUIRE_PG=1 is set (CI sets it), in which case it fails.
//
// PostgreSQL refuses to run as root. When the test process runs as root,
// initdb and postgres run as the "postgres" user if it exists, else as
// "nobody", over a temporary directory owned by that user.
//
// Servers are started with a parent-death signal, so they do not outlive a
// test process that is killed or panics.
//
// Use it from a package's TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by this package.
const (
	// EnvDSN names an existing server to use instead of starting one. The
	// role must be allowed to create databases.
	EnvDSN = "ORCHESTRIX_PG_DSN"
	// EnvRequire, when "1", turns a missing PostgreSQL into a test
	// failure instead of a skip.
	EnvRequire = "ORCHESTRIX_REQUIRE_PG"
)

// ErrNotInstalled: the PostgreSQL server binaries (initdb, postgres) are
// not installed, so no throwaway server can be started.
var ErrNotInstalled = errors.New("pgtest: PostgreSQL server binaries not installed")

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
	dbCounter  atomic.Int64
)

// Main runs the tests of m and then stops the shared server, if one was
// started, and exits with the tests' exit code. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		if err := shared.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stopping the shared server: %v\n", err)
		}
	}
	os.Exit(code)
}

// DSN returns the connection string of a new, empty database for t, on the
// server named by ORCHESTRIX_PG_DSN or on the process's shared throwaway
// server. The database is dropped when t ends (after t's other cleanups,
// which were registered later and run first).
func DSN(t testing.TB) string {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return newDatabase(t, dsn)
	}
	sharedOnce.Do(func() {
		bin, err := findBinaries()
		if err != nil {
			sharedErr = err
			return
		}
		shared, sharedErr = startServer(bin)
	})
	if sharedErr != nil {
		unavailable(t, sharedErr)
	}
	return newDatabase(t, shared.DSN())
}

// Server is a throwaway PostgreSQL server owned by one test.
type Server struct {
	bin     string // directory holding initdb and postgres
	dir     string // temporary root: data/, socket and log
	port    int
	runAs   *syscall.Credential
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
}

// Start starts a server of t's own (separate from the shared one), stopped
// and removed when t ends. It skips or fails t like DSN when PostgreSQL is
// not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBinaries()
	if err != nil {
		unavailable(t, err)
	}
	s, err := startServer(bin)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("pgtest: stopping server: %v", err)
		}
	})
	return s
}

// StartServer starts a throwaway server outside a test (for example for
// a benchmark program). The caller must Stop it; a server is also stopped
// when the process that started it dies. It fails when the PostgreSQL
// binaries cannot be found, with an error matching ErrNotInstalled.
func StartServer() (*Server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	return startServer(bin)
}

// DSN returns the connection string of the server's "postgres" database
// over TCP. It stays valid across Kill and Restart.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// NewDatabase creates a fresh database on s for t and returns its
// connection string; it is dropped when t ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, s.DSN())
}

// Kill crashes the server: SIGKILL to the postmaster and every one of its
// child processes (backends put themselves in their own sessions, so a
// process-group kill would miss them), then waits until all are gone.
// Data written with synchronous commit survives; Restart runs crash
// recovery.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("pgtest: server is not running")
	}
	pid := s.cmd.Process.Pid
	// List the children first: once the postmaster is dead they are
	// reparented and no longer recognisable.
	children := childrenOf(pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pgtest: kill server: %w", err)
	}
	for _, c := range children {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	<-s.exited
	s.cmd = nil
	for _, c := range children {
		for i := 0; i < 1000 && alive(c); i++ {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// childrenOf returns the pids of the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(child); ok && ppid == pid {
			out = append(out, child)
		}
	}
	return out
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

// procStat returns the parent pid and state of pid from /proc/<pid>/stat.
func procStat(pid int) (ppid int, state string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", false
	}
	// The command name is in parentheses and may contain spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0], err == nil
}

// Restart starts the server again on the same data directory and port
// (after Kill or Stop) and waits until it accepts connections.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("pgtest: server is already running")
	}
	if s.stopped {
		return errors.New("pgtest: server was stopped for good")
	}
	return s.launch()
}

// Stop shuts the server down (fast shutdown) and removes its directory.
// Stop is idempotent; Start's cleanup calls it.
func (s *Server) Stop() error { return s.stop() }

func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	if s.cmd != nil {
		// SIGINT is PostgreSQL's fast shutdown.
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
		s.cmd = nil
	}
	return os.RemoveAll(s.dir)
}

// unavailable skips t, or fails it when ORCHESTRIX_REQUIRE_PG=1.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("pgtest: PostgreSQL required (%s=1) but unavailable: %v", EnvRequire, err)
	}
	t.Skipf("pgtest: PostgreSQL unavailable, skipping: %v (set %s or install PostgreSQL)", err, EnvDSN)
}

// findBinaries returns the directory holding initdb and postgres.
func findBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Prefer the newest major version.
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, dir := range dirs {
		_, err1 := os.Stat(filepath.Join(dir, "initdb"))
		_, err2 := os.Stat(filepath.Join(dir, "postgres"))
		if err1 == nil && err2 == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: initdb and postgres not found on PATH or in /usr/lib/postgresql/*/bin", ErrNotInstalled)
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// startServer initialises a data directory and starts postgres on it.
func startServer(bin string) (*Server, error) {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{bin: bin, dir: dir}
	fail := func(err error) (*Server, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			return fail(err)
		}
		s.runAs = cred
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(fmt.Errorf("pgtest: %w", err))
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"),
		"-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust",
		"--no-locale", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.runAs}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("pgtest: initdb: %w: %s", err, out))
	}
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	s.port = port
	s.mu.Lock()
	err = s.launch()
	s.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	return s, nil
}

// unprivileged returns the credential of the user postgres runs as when
// the test process is root.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New("pgtest: running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch starts postgres and waits until it accepts connections. s.mu is
// held.
func (s *Server) launch() error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	if s.runAs != nil {
		_ = logf.Chown(int(s.runAs.Uid), int(s.runAs.Gid))
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"),
		"-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port),
		"-k", s.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "max_connections=300",
		"-c", "shared_buffers=64MB",
		"-c", "fsync=on",
		"-c", "synchronous_commit=on",
	)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: s.runAs,
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	// The parent-death signal fires when the thread that forked the child
	// exits, so fork from a locked thread that lives as long as the child.
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			runtime.UnlockOSThread()
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
		// The thread exits with this goroutine (still locked) - harmless,
		// the child is gone.
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.cmd = cmd
	s.exited = exited
	if err := s.waitReady(); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		s.cmd = nil
		logTail, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
		return fmt.Errorf("pgtest: postgres did not become ready: %w\n%s", err, tail(string(logTail), 2000))
	}
	return nil
}

func (s *Server) waitReady() error {
	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return errors.New("postgres exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN())
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		time.Sleep(20 * time.Millisecond)
	}
	return lastErr
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// newDatabase creates database test_<pid>_<n> on the server of adminDSN
// and returns a DSN for it; t's cleanup drops it.
func newDatabase(t testing.TB, adminDSN string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(adminDSN)
	if err != nil {
		t.Fatalf("pgtest: parse DSN: %v", err)
	}
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), dbCounter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return // the server may be gone (a killed test server); nothing to free
		}
		defer conn.Close(context.Background())
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	return replaceDatabase(adminDSN, cfg, name)
}

// replaceDatabase returns adminDSN pointing at database name.
func replaceDatabase(adminDSN string, cfg *pgx.ConnConfig, name string) string {
	if strings.HasPrefix(adminDSN, "postgres://") || strings.HasPrefix(adminDSN, "postgresql://") {
		// Rebuild the URL with the new path, keeping the query.
		rest := adminDSN[strings.Index(adminDSN, "://")+3:]
		query := ""
		if i := strings.IndexByte(rest, '?'); i >= 0 {
			rest, query = rest[:i], rest[i:]
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i]
		}
		return adminDSN[:strings.Index(adminDSN, "://")+3] + rest + "/" + name + query
	}
	// Keyword/value form: a later dbname wins.
	_ = cfg
	return adminDSN + " dbname=" + name
}

// clockTicks is Linux's USER_HZ, the unit of the times in /proc/<pid>/stat
// (100 on every architecture Go supports on Linux).
const clockTicks = 100

// CPUTime returns the CPU time (user + system) the server has used so
// far: the postmaster's and every live child's, plus what its exited
// children used. Differences between two calls measure the server's
// share of a workload (a benchmark reports it per operation). It is
// accurate to 1/100 s per process and fails when the server is not
// running or /proc cannot be read.
func (s *Server) CPUTime() (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0, errors.New("pgtest: server is not running")
	}
	pid := s.cmd.Process.Pid
	total, err := procCPU(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range childrenOf(pid) {
		if t, err := procCPU(c); err == nil { // a child may exit meanwhile
			total += t
		}
	}
	return total, nil
}

// procCPU returns utime + stime + cutime + cstime of pid.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("pgtest: malformed /proc/%d/stat", pid)
	}
	// Fields after the command name start at field 3 (state); utime,
	// stime, cutime and cstime are fields 14 to 17.
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return 0, fmt.Errorf("pgtest: short /proc/%d/stat", pid)
	}
	var ticks int64
	for _, field := range f[11:15] {
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("pgtest: /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
