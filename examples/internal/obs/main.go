package obs

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"
)

// Main is the main function of the example called name. It registers -data
// (described by dataHelp) and the observability flags on flag.CommandLine,
// next to any flags the caller registered before, parses them, creates the
// -data directory (and its parents) when it does not exist yet, or makes a
// temporary data directory that it removes afterwards when -data is not
// given, and calls run with a one-minute deadline. After a successful run
// it keeps serving metrics until interrupted when -metrics is set. An error
// is printed as "name: error" and exits with status 1.
func Main(name, dataHelp string, run func(ctx context.Context, dir string, o *Obs) error) {
	data := flag.String("data", "", dataHelp+" (default: a new temporary directory)")
	settings := Flags(flag.CommandLine)
	flag.Parse()
	if err := mainErr(name, *data, settings, run); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func mainErr(name, dir string, settings *Settings, run func(context.Context, string, *Obs) error) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "orchestrix-"+name+"-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	o, err := settings.Start(os.Stdout, os.Stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err = run(ctx, dir, o)
	cancel()
	if err == nil {
		hold, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		o.Hold(hold, os.Stderr)
		stop()
	}
	return errors.Join(err, o.Shutdown(context.Background()))
}
