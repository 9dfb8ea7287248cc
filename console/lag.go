package console

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/orchestrix/orchestrix"
)

// Defaults of the lag sampling.
const (
	DefaultLagSampleEvery = 5 * time.Second
	DefaultLagWindow      = 10 * time.Minute
)

// LagSample is a projection's lag (events behind the head of the global
// log) at a time.
type LagSample struct {
	Time time.Time `json:"time"`
	Lag  uint64    `json:"lag"`
}

// lagSampler records every projection's lag every Config.LagSampleEvery
// on Config.Clock, keeping Config.LagWindow of samples.
type lagSampler struct {
	c      *Console
	every  time.Duration
	window time.Duration

	mu      sync.Mutex
	samples map[string][]LagSample
	timer   orchestrix.Timer
	stopped bool
}

func newLagSampler(c *Console) *lagSampler {
	s := &lagSampler{c: c, every: c.cfg.LagSampleEvery, window: c.cfg.LagWindow, samples: map[string][]LagSample{}}
	s.mu.Lock()
	s.timer = c.cfg.Clock.AfterFunc(s.every, s.tick)
	s.mu.Unlock()
	return s
}

// tick takes one sample and arms the next.
func (s *lagSampler) tick() {
	ctx, cancel := context.WithTimeout(context.Background(), s.c.cfg.RequestTimeout)
	sts, err := s.c.cfg.Projections.Statuses(ctx)
	cancel()
	now := s.c.cfg.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	if err == nil {
		seen := make(map[string]bool, len(sts))
		for _, st := range sts {
			seen[st.Name] = true
			s.samples[st.Name] = trimSamples(append(s.samples[st.Name], LagSample{Time: now, Lag: st.Lag}), now.Add(-s.window))
		}
		for name := range s.samples {
			if !seen[name] {
				delete(s.samples, name) // removed from the manager
			}
		}
	}
	s.timer = s.c.cfg.Clock.AfterFunc(s.every, s.tick)
}

// trimSamples drops the samples older than since.
func trimSamples(ss []LagSample, since time.Time) []LagSample {
	i := 0
	for i < len(ss) && ss[i].Time.Before(since) {
		i++
	}
	if i == 0 {
		return ss
	}
	return append(ss[:0], ss[i:]...)
}

// history returns a copy of name's samples, oldest first.
func (s *lagSampler) history(name string) []LagSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LagSample{}, s.samples[name]...)
}

func (s *lagSampler) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.timer != nil {
		s.timer.Stop()
	}
}

// LagChart is an inline SVG chart of lag samples: the polyline points in
// a Width×Height box (x: time over the window, y: lag up to Max).
type LagChart struct {
	Width, Height int
	Points        string
	Max           uint64
	From, To      time.Time
}

const chartW, chartH = 240, 48

// lagChart draws samples over the window ending at the newest sample.
func lagChart(ss []LagSample, window time.Duration) *LagChart {
	if len(ss) == 0 {
		return nil
	}
	ch := &LagChart{Width: chartW, Height: chartH, To: ss[len(ss)-1].Time}
	ch.From = ch.To.Add(-window)
	for _, s := range ss {
		ch.Max = max(ch.Max, s.Lag)
	}
	top := max(ch.Max, 1)
	var b strings.Builder
	for i, s := range ss {
		x := float64(chartW) * (1 - float64(ch.To.Sub(s.Time))/float64(window))
		y := float64(chartH) * (1 - float64(s.Lag)/float64(top))
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", max(x, 0), y)
	}
	ch.Points = b.String()
	return ch
}
