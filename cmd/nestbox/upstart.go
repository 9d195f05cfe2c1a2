package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
)

// splitTemplates returns the template `nestbox up` builds before serving
// and those it builds in the background: minimal comes first when it is
// listed, as it builds in about a second while base takes minutes.
func splitTemplates(names []string) (first string, rest []string) {
	if len(names) == 0 {
		return "", nil
	}
	ordered := slices.Clone(names)
	if i := slices.Index(ordered, "minimal"); i > 0 {
		ordered = append(append([]string{"minimal"}, ordered[:i]...), ordered[i+1:]...)
	}
	return ordered[0], ordered[1:]
}

// templateLog lists the build logs of the templates names.
func templateLog(cfg upConfig, names []string) []string {
	dir := cfg.agent.TemplateDir
	if dir == "" {
		dir = filepath.Join(cfg.agent.DataDir, "templates")
	}
	var out []string
	for _, n := range names {
		out = append(out, filepath.Join(dir, ".logs", n+".log"))
	}
	return out
}

// quietWriter passes writes to w until quiet is called, then drops them:
// progress of background work must not print after the welcome.
type quietWriter struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func (q *quietWriter) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done {
		return len(p), nil
	}
	return q.w.Write(p)
}

func (q *quietWriter) quiet() {
	q.mu.Lock()
	q.done = true
	q.mu.Unlock()
}

// cliCommand is how the user runs this nestbox: "nestbox" when that name on
// PATH is this binary (make run links /usr/local/bin/nestbox to it), else
// the binary's full path.
func cliCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "nestbox"
	}
	self, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return exe
	}
	if p, err := exec.LookPath("nestbox"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil && r == self {
			return "nestbox"
		}
	}
	return self
}
