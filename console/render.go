package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

var pages = []string{"streams", "stream", "event", "projections", "tail", "aggregate", "search", "sagas", "saga", "check", "processes", "process", "stats"}

func (c *Console) parseTemplates() error {
	funcs := template.FuncMap{
		"time": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339Nano)
		},
		"prev":     func(v uint64) uint64 { return v - 1 },
		"list":     func(s ...string) []string { return s },
		"next":     func(v uint64) uint64 { return v + 1 },
		"minus":    func(a, b uint64) uint64 { return b - a },
		"writable": func() bool { return c.cfg.EnableWrites },
	}
	c.tmpl = make(map[string]*template.Template, len(pages))
	for _, p := range pages {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(webFS, "web/layout.html", "web/"+p+".html")
		if err != nil {
			return fmt.Errorf("console: parsing template %s: %w", p, err)
		}
		c.tmpl[p] = t
	}
	return nil
}

type pageData struct {
	Title string
	Page  string
	Data  any
	Error string
}

// page serves an HTML page from the data fn builds; an error is shown in
// the page with its status.
func (c *Console) page(name string, fn func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r, cancel := c.withTimeout(r)
		defer cancel()
		data, err := fn(r)
		pd := pageData{Title: name, Page: name, Data: data}
		code := http.StatusOK
		if err != nil {
			code, pd.Error = c.status(r, err)
			pd.Data = nil
		}
		var buf bytes.Buffer
		if err := c.tmpl[name].Execute(&buf, pd); err != nil {
			c.log.ErrorContext(r.Context(), "console: rendering page", "page", name, "err", err)
			http.Error(w, "console: rendering failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(code)
		_, _ = w.Write(buf.Bytes())
	}
}

// api serves the data fn builds as JSON; an error is {"error": message}.
func (c *Console) api(fn func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r, cancel := c.withTimeout(r)
		defer cancel()
		data, err := fn(r)
		if err != nil {
			code, msg := c.status(r, err)
			writeJSON(w, code, map[string]string{"error": msg})
			return
		}
		writeJSON(w, http.StatusOK, data)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":"console: encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// Query parameter parsing: every malformed value is a 400 naming it.

func (c *Console) limit(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return c.cfg.PageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, badRequest("limit %q: want a positive integer", s)
	}
	if n > c.cfg.MaxPageSize {
		return 0, badRequest("limit %d is above the maximum page size %d", n, c.cfg.MaxPageSize)
	}
	return n, nil
}

func uintParam(r *http.Request, name string, def uint64) (uint64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, badRequest("%s %q: want a non-negative integer", name, s)
	}
	return n, nil
}

func timeParam(r *http.Request, name string) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, badRequest("%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", name, s)
}

func stringParam(r *http.Request, name string, required bool) (string, error) {
	s := r.URL.Query().Get(name)
	if required && s == "" {
		return "", badRequest("missing query parameter %q", name)
	}
	if len(s) > 1024 {
		return "", badRequest("%s is longer than 1024 bytes", name)
	}
	if strings.ContainsRune(s, 0) {
		return "", badRequest("%s contains a NUL byte", name)
	}
	return s, nil
}
