// Command cluster is the Orchestrix cluster example: three members, one
// process each, over one PostgreSQL journal. It sends deposits (each with
// its own command id) to bank accounts through all three members, kills
// one member with SIGKILL while deposits keep flowing, and shows that the
// survivors serve the killed member's accounts again and that every
// acknowledged deposit is in the journal exactly once.
//
//	go run ./examples/cluster                 # a throwaway PostgreSQL from the installed binaries
//	go run ./examples/cluster -pg DSN         # an existing database (see below)
//
// The program starts itself again once per member (internal/localcluster).
// protoactor-go's automanaged membership binds its health server to every
// interface (0.0.0.0, hard-coded), so as root the whole run first moves
// into a new network namespace with only a loopback interface (unshare -n):
// nothing in it is reachable from another host. A -pg server outside that
// namespace is then reachable only through its unix socket
// (-pg 'host=/var/run/postgresql user=… dbname=…'), or run with
// -netns=false.
//
// Without root (or with -netns=false) the members run on 127.0.0.1
// anyway, after a warning: their remote endpoints, control servers and the
// throwaway PostgreSQL listen on 127.0.0.1 only, and the one thing other
// hosts can reach for the length of the run is automanaged's read-only
// health endpoint (GET /_health: member id, its 127.0.0.1 address, ports,
// kind names). Membership is the fixed list of 127.0.0.1 seeds, so no
// other host can join or send work. We judge that acceptable for a local
// demo; do not run it that way on a machine whose other interfaces face a
// network you do not trust.
//
// Exit status: 0 when every check passed, 1 when a check failed or
// something went wrong, 2 on bad flags, 3 when PostgreSQL is needed and
// not installed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/cluster"
	"github.com/orchestrix/orchestrix/internal/localcluster"
	"github.com/orchestrix/orchestrix/journal/postgres"
)

// ---- the domain: bank accounts that take deposits ----

// Account is an account's state.
type Account struct{ Balance int64 }

// Deposit adds Amount to an account.
type Deposit struct{ Amount int64 }

// Deposited records a deposit.
type Deposited struct{ Amount int64 }

// Accounts is the account aggregate. In cluster mode commands cross
// members, so their types are listed (Commands) like the event types.
var Accounts = aggregate.Definition[Account, Deposit, Deposited]{
	Kind:    "account",
	Initial: func(string) Account { return Account{} },
	Decide: func(_ Account, c Deposit) ([]Deposited, error) {
		if c.Amount <= 0 {
			return nil, errors.New("amount must be positive")
		}
		return []Deposited{{Amount: c.Amount}}, nil
	},
	Evolve: func(s Account, e Deposited) Account {
		s.Balance += e.Amount
		return s
	},
	Events:   []aggregate.EventType{aggregate.Event[Deposited]("bank.account.deposited")},
	Commands: []aggregate.CommandType{aggregate.CommandOf[Deposit]("bank.account.deposit")},
}

// Member timing: a dead member is dropped after about RefreshTTL; a
// request without a reply for RequestTimeout has an unknown outcome.
const (
	refreshTTL     = 500 * time.Millisecond
	requestTimeout = 3 * time.Second
)

// ---- the member process ----

// sendRequest asks a member to send one deposit.
type sendRequest struct {
	Account   string `json:"account"`
	CommandID string `json:"command_id"`
	Amount    int64  `json:"amount"`
}

// sendReply is what the member saw.
type sendReply struct {
	OK        bool   `json:"ok"`
	Duplicate bool   `json:"duplicate"`
	Version   uint64 `json:"version"`
	// Owner is the owner of the account in the member's view when it
	// sent the command.
	Owner string `json:"owner"`
	Err   string `json:"err,omitempty"`
	// Unknown: no reply in time, the deposit may or may not be stored.
	Unknown bool `json:"unknown,omitempty"`
}

type stateReply struct {
	Balance int64  `json:"balance"`
	Version uint64 `json:"version"`
}

// runMember is a member process: the journal, the system with the account
// kind, the cluster member, and its control API.
func runMember(spec localcluster.Spec) int {
	fail := func(err error) int { fmt.Fprintf(os.Stderr, "member %d: %v\n", spec.Index, err); return 1 }
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	j, err := postgres.Open(ctx, spec.Params["dsn"], postgres.Config{Schema: spec.Params["schema"]})
	if err != nil {
		return fail(err)
	}
	sys, err := actor.NewSystem(actor.Config{Journal: j, Logger: log, Source: "/orchestrix/examples/cluster"})
	if err != nil {
		return fail(err)
	}
	accounts, err := actor.Register(sys, Accounts)
	if err != nil {
		return fail(err)
	}
	cfg := spec.Config()
	cfg.RefreshTTL, cfg.RequestTimeout, cfg.Logger = refreshTTL, requestTimeout, log
	m, err := cluster.Start(ctx, sys, cfg)
	if err != nil {
		return fail(err)
	}
	go func() {
		// SIGTERM: leave the cluster and close cleanly.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		<-sigs
		_ = m.Close()
		_ = sys.Close()
		_ = j.Close()
		os.Exit(0)
	}()

	mux := http.NewServeMux()
	localcluster.HandleReady(mux, m)
	localcluster.Handle(mux, "/owners", func(_ context.Context, ids []string) ([]string, error) {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i], _ = m.Owner(Accounts.Kind, id)
		}
		return out, nil
	})
	localcluster.Handle(mux, "/send", func(ctx context.Context, r sendRequest) (sendReply, error) {
		owner, _ := m.Owner(Accounts.Kind, r.Account)
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		res, err := accounts.Send(ctx, r.Account, Deposit{Amount: r.Amount}, actor.WithCommandID(r.CommandID))
		out := sendReply{OK: err == nil, Duplicate: res.Duplicate, Version: res.Version, Owner: owner}
		if err != nil {
			out.Err, out.Unknown = err.Error(), errors.Is(err, orchestrix.ErrOutcomeUnknown)
		}
		return out, nil
	})
	localcluster.Handle(mux, "/state", func(ctx context.Context, account string) (stateReply, error) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		s, v, err := accounts.State(ctx, account)
		return stateReply{Balance: s.Balance, Version: v}, err
	})
	return fail(spec.Serve(mux))
}

// ---- the program ----

func main() {
	if spec, ok, err := localcluster.Self(); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(runMember(spec))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
	exitNoPG   = 3
)

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("pg", "", "PostgreSQL connection string (default: start a throwaway server from the installed PostgreSQL binaries)")
	netns := fs.Bool("netns", true, "as root, run inside a loopback-only network namespace (unshare -n)")
	nAccounts := fs.Int("accounts", 30, "accounts the deposits go to")
	nDeposits := fs.Int("deposits", 300, "deposits sent through the members before the kill")
	keep := fs.Bool("keep", false, "keep the run's schema in the -pg database (default: dropped at exit)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 || *nAccounts < 3 || *nDeposits < 1 {
		fmt.Fprintln(stderr, "cluster: want no arguments, -accounts ≥ 3 and -deposits ≥ 1")
		return exitUsage
	}
	if *netns {
		if reason := localcluster.EnterNetns(); reason != "" {
			fmt.Fprintf(stderr, "cluster: %s.\ncluster: running the members on 127.0.0.1 without a namespace: %s.\n", reason, localcluster.Exposure)
		}
	} else {
		fmt.Fprintf(stderr, "cluster: -netns=false: %s.\n", localcluster.Exposure)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 150*time.Second)
	defer cancel()
	d := &demo{out: stdout, errOut: stderr, nAccounts: *nAccounts, nDeposits: *nDeposits, keep: *keep}
	code, err := d.run(ctx, *dsn)
	if err != nil {
		fmt.Fprintln(stderr, "cluster:", err)
	}
	return code
}
