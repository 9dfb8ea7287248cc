package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// modulePath is the module whose bench/ directory holds the harness.
const modulePath = "github.com/orchestrix/orchestrix"

var benchCommand = &command{
	name:       "bench",
	args:       "[--src DIR] [SUBCOMMAND [FLAGS]]",
	flagsFirst: true,
	summary:    "run the benchmark harness (needs the source tree)",
	help: `
Runs the benchmark harness of the source tree, 'go run ./bench', with the
given arguments, e.g.
  orchestrix bench help
  orchestrix bench journal -h
The harness is a separate program in the repository (bench/), built from
source by the go tool, so this needs a checkout of ` + modulePath + `
(found from the current directory upwards, or given with --src) and Go on
PATH. Without them it explains how to get them and exits with status 2.
Everything after the subcommand name goes to the harness unchanged. Results of earlier runs are in
BENCHMARKS.md.`,
	setFlags: func(fs *flag.FlagSet) func(*app, []string) error {
		src := fs.String("src", "", "`DIR`ectory of the source tree (default: found from the current directory)")
		return func(a *app, args []string) error {
			root := *src
			if root == "" {
				wd, err := os.Getwd()
				if err != nil {
					return err
				}
				root = findModule(wd)
			}
			if root == "" || !isBenchTree(root) {
				where := "the current directory or its parents"
				if *src != "" {
					where = *src
				}
				return usagef("no Orchestrix source tree (go.mod of %s with bench/main.go) in %s.\n"+
					"The benchmark harness is run from source: clone the repository, then run\n"+
					"  cd orchestrix && go run ./bench help\n"+
					"or run 'orchestrix bench' inside the checkout (or with --src DIR)", modulePath, where)
			}
			goTool, err := exec.LookPath("go")
			if err != nil {
				return usagef("the go tool is not on PATH; install Go, then run 'go run ./bench' in %s", root)
			}
			cmd := exec.CommandContext(a.ctx, goTool, append([]string{"run", "./bench"}, args...)...)
			cmd.Dir = root
			cmd.Stdin, cmd.Stdout, cmd.Stderr = a.stdin, a.stdout, a.stderr
			err = cmd.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return fmt.Errorf("%w: the harness exited with status %d", errProblems, ee.ExitCode())
			}
			return err
		}
	},
}

// findModule returns the nearest directory at or above dir whose go.mod
// declares modulePath, or "".
func findModule(dir string) string {
	for {
		if isBenchTree(dir) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// isBenchTree reports whether dir is the module root with the harness.
func isBenchTree(dir string) bool {
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	first, _, _ := bytes.Cut(mod, []byte("\n"))
	if string(bytes.TrimSpace(first)) != "module "+modulePath {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "bench", "main.go"))
	return err == nil
}
