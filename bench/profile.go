package main

import (
	"flag"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// profileFlags are the diagnosis flags shared by the subcommands: a CPU
// profile, block and mutex profiles, and an execution trace of the whole
// run.
type profileFlags struct {
	cpu, block, mutex, trace, mem string
}

func (p *profileFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.cpu, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&p.block, "blockprofile", "", "write a blocking profile (every blocking event) to this file")
	fs.StringVar(&p.mutex, "mutexprofile", "", "write a mutex contention profile to this file")
	fs.StringVar(&p.mem, "memprofile", "", "write a heap profile (allocations of the whole run, -sample_index=alloc_space) to this file")
	fs.StringVar(&p.trace, "trace", "", "write a runtime execution trace (go tool trace) to this file")
}

// start starts the requested profiles; the returned function stops them
// and writes the files.
func (p *profileFlags) start() (func(), error) {
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if p.cpu != "" {
		f, err := os.Create(p.cpu)
		if err != nil {
			return stop, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return stop, err
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if p.trace != "" {
		f, err := os.Create(p.trace)
		if err != nil {
			stop()
			return func() {}, err
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			stop()
			return func() {}, err
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	for _, prof := range []struct {
		path string
		name string
		on   func()
		off  func()
	}{
		{p.block, "block", func() { runtime.SetBlockProfileRate(1) }, func() { runtime.SetBlockProfileRate(0) }},
		{p.mutex, "mutex", func() { runtime.SetMutexProfileFraction(1) }, func() { runtime.SetMutexProfileFraction(0) }},
	} {
		if prof.path == "" {
			continue
		}
		prof.on()
		path, name, off := prof.path, prof.name, prof.off
		stops = append(stops, func() {
			off()
			f, err := os.Create(path)
			if err != nil {
				return
			}
			defer f.Close()
			if pr := pprof.Lookup(name); pr != nil {
				_ = pr.WriteTo(f, 0)
			}
		})
	}
	if p.mem != "" {
		path := p.mem
		stops = append(stops, func() {
			f, err := os.Create(path)
			if err != nil {
				return
			}
			defer f.Close()
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
		})
	}
	return stop, nil
}
