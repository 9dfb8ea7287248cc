package obs_test

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/examples/internal/obs"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
)

type tally struct{ N int }

type add struct{ N int }

type added struct{ N int }

var tallies = aggregate.Definition[tally, add, added]{
	Kind:    "tally",
	Initial: func(string) tally { return tally{} },
	Decide:  func(_ tally, c add) ([]added, error) { return []added{{N: c.N}}, nil },
	Evolve:  func(s tally, e added) tally { s.N += e.N; return s },
	Events:  []aggregate.EventType{aggregate.Event[added]("obs.test.added")},
}

// start parses args into a fresh flag set and starts the result.
func start(t *testing.T, args []string, spans io.Writer) *obs.Obs {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	settings := obs.Flags(fs)
	require.NoError(t, fs.Parse(args))
	o, err := settings.Start(spans, nil)
	require.NoError(t, err)
	return o
}

// sendCommands runs a system wired to o and sends n commands.
func sendCommands(t *testing.T, o *obs.Obs, n int) {
	t.Helper()
	ctx := context.Background()
	j, err := memjournal.New(memjournal.Config{})
	require.NoError(t, err)
	sys, err := actor.NewSystem(actor.Config{Journal: j, Metrics: o.Metrics(), TracerProvider: o.TracerProvider()})
	require.NoError(t, err)
	defer func() { require.NoError(t, sys.Shutdown(ctx)) }()
	h, err := actor.Register(sys, tallies)
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		_, err := h.Send(ctx, "t1", add{N: 1})
		require.NoError(t, err)
	}
}

func TestSettings_Start_NoFlagsGivesANilObsThatWorks(t *testing.T) {
	o := start(t, nil, nil)
	require.Nil(t, o)
	require.Nil(t, o.Metrics())
	require.Nil(t, o.TracerProvider())
	require.Empty(t, o.MetricsAddr())
	o.Hold(context.Background(), nil) // returns at once
	sendCommands(t, o, 2)
	require.NoError(t, o.Shutdown(context.Background()))
}

func TestSettings_Start_MetricsServesCommandCounts(t *testing.T) {
	o := start(t, []string{"-metrics", "127.0.0.1:0"}, nil)
	require.NotNil(t, o.Metrics())
	require.Nil(t, o.TracerProvider())
	defer func() { require.NoError(t, o.Shutdown(context.Background())) }()

	sendCommands(t, o, 3)

	resp, err := http.Get("http://" + o.MetricsAddr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(body), `orchestrix_commands_total{kind="tally",outcome="ok"} 3`)
	require.Contains(t, string(body), "go_goroutines")
}

func TestSettings_Start_TracePrintsCommandSpans(t *testing.T) {
	var spans bytes.Buffer
	o := start(t, []string{"-trace"}, &spans)
	require.Nil(t, o.Metrics())
	require.NotNil(t, o.TracerProvider())

	sendCommands(t, o, 2)
	require.NoError(t, o.Shutdown(context.Background())) // flushes the batcher

	out := spans.String()
	require.Contains(t, out, `"Name": "orchestrix.command"`)
	require.Contains(t, out, `"Value": "tally"`)
}

func TestSettings_Start_BadMetricsAddressFails(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	settings := obs.Flags(fs)
	require.NoError(t, fs.Parse([]string{"-metrics", "not-an-address"}))
	o, err := settings.Start(nil, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "-metrics not-an-address")
	require.Nil(t, o)
}

func TestObs_Shutdown_StopsServing(t *testing.T) {
	o := start(t, []string{"-metrics", "127.0.0.1:0"}, nil)
	addr := o.MetricsAddr()
	require.NoError(t, o.Shutdown(context.Background()))
	_, err := http.Get("http://" + addr + "/metrics")
	require.Error(t, err)
	o.Hold(context.Background(), nil) // the server is gone: returns at once
}
