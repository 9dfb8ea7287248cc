package console

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/orchestrix/orchestrix/projection"
)

// ProjectionRow is one projection's status.
type ProjectionRow struct {
	Name           string `json:"name"`
	State          string `json:"state"`
	Live           bool   `json:"live"`
	Position       uint64 `json:"position"`
	Head           uint64 `json:"head"`
	Lag            uint64 `json:"lag"`
	Attempts       int    `json:"attempts,omitempty"`
	FailedPosition uint64 `json:"failed_position,omitempty"`
	Error          string `json:"error,omitempty"`
	// LagHistory is the lag sampled in-process over the last
	// Config.LagWindow, oldest first.
	LagHistory []LagSample `json:"lag_history"`
	// Chart draws LagHistory (for the page).
	Chart *LagChart `json:"-"`
}

// ProjectionPage is the answer of GET /api/projections.
type ProjectionPage struct {
	Projections []ProjectionRow `json:"projections"`
	Writable    bool            `json:"writable"`
}

func (c *Console) projections(r *http.Request) (any, error) {
	out := ProjectionPage{Projections: []ProjectionRow{}, Writable: c.cfg.EnableWrites}
	if c.cfg.Projections == nil {
		return out, nil
	}
	sts, err := c.cfg.Projections.Statuses(r.Context())
	if err != nil {
		return nil, err
	}
	for _, st := range sts {
		row := ProjectionRow{Name: st.Name, State: st.State.String(), Live: st.Live, Position: st.Position,
			Head: st.Head, Lag: st.Lag, Attempts: st.Attempts, FailedPosition: st.FailedPosition}
		if st.LastError != nil {
			row.Error = st.LastError.Error()
		}
		row.LagHistory = c.lag.history(st.Name)
		row.Chart = lagChart(row.LagHistory, c.cfg.LagWindow)
		out.Projections = append(out.Projections, row)
	}
	return out, nil
}

// projectionAction serves POST {api/}projections/{name}/{action}, with
// action one of start, stop, skip (form or query value "position"),
// rebuild. It exists only with Config.EnableWrites, behind cross-origin
// protection; Authorize decides and the principal is logged.
func (c *Console) projectionAction(api bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r, cancel := c.withTimeout(r)
		defer cancel()
		name, verb := r.PathValue("name"), r.PathValue("action")
		fail := func(err error) {
			code, msg := c.status(r, err)
			if api {
				writeJSON(w, code, map[string]string{"error": msg})
				return
			}
			http.Error(w, msg, code)
		}
		if c.cfg.Projections == nil {
			fail(notFound("console: no projections are configured"))
			return
		}
		action := Action{Name: "projection." + verb, Target: name}
		var position uint64
		switch verb {
		case "start", "stop", "rebuild":
		case "skip":
			p, err := strconv.ParseUint(r.FormValue("position"), 10, 64)
			if err != nil || p == 0 {
				fail(badRequest("skip needs a positive \"position\" (the failed event's position)"))
				return
			}
			position = p
		default:
			fail(notFound("console: unknown projection action %q (start, stop, skip, rebuild)", verb))
			return
		}
		principal := "anonymous"
		if c.cfg.Authorize != nil {
			who, err := c.cfg.Authorize(r, action)
			if err != nil {
				c.log.WarnContext(r.Context(), "console: action refused", "action", action.Name, "target", name, "remote", r.RemoteAddr, "err", err)
				fail(&requestError{status: http.StatusForbidden, msg: "console: not authorized: " + err.Error()})
				return
			}
			principal = who
		}
		m := c.cfg.Projections
		ctx := r.Context()
		var err error
		switch verb {
		case "start":
			err = m.Start(ctx, name)
		case "stop":
			err = m.Stop(ctx, name)
		case "skip":
			err = m.Skip(ctx, name, position)
		case "rebuild":
			err = m.Rebuild(ctx, name)
		}
		if errors.Is(err, projection.ErrNotFailed) || errors.Is(err, projection.ErrNoReset) {
			err = &requestError{status: http.StatusConflict, msg: err.Error()}
		}
		c.log.InfoContext(ctx, "console: action", "action", action.Name, "target", name, "principal", principal,
			"remote", r.RemoteAddr, "ok", err == nil)
		if err != nil {
			fail(err)
			return
		}
		if api {
			writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
			return
		}
		seeOther(w, "../../projections")
	}
}
