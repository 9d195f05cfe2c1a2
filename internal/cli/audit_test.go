package cli

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAuditList: audit ls prints a table of the team's log, sends the
// nested filters and --since as from, follows pages with --all, and asks
// the platform's log with --admin; misuse is refused before any request.
func TestAuditList(t *testing.T) {
	f := newFakeServer(t)
	res := f.run(t, Audit, "", "ls", "--resource-type", "capsule", "--action", "pause", "--since", "24h", "--limit", "5")
	if res.err != nil {
		t.Fatalf("audit ls: %v", res.err)
	}
	for _, want := range []string{"ACTOR", "ada@example.com", "capsule.pause", "cap1", "success", "1h ago"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("audit ls prints no %q:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout, "host.cordon") {
		t.Errorf("audit ls without --all printed the second page:\n%s", res.stdout)
	}
	path, raw, _ := strings.Cut(f.auditQueries[0], "?")
	q, _ := url.ParseQuery(raw)
	from, err := time.Parse(time.RFC3339Nano, q.Get("from"))
	if path != "/v1/audit-logs" || q.Get("resource_type") != "capsule" || q.Get("action") != "pause" || q.Get("limit") != "5" ||
		err != nil || time.Since(from) < 23*time.Hour || time.Since(from) > 25*time.Hour {
		t.Errorf("audit ls sent %s", f.auditQueries[0])
	}

	res = f.run(t, Audit, "", "ls", "--admin", "--scope", "admin", "--all")
	if res.err != nil || !strings.Contains(res.stdout, "host.cordon") || !strings.Contains(res.stdout, "key ci") || !strings.Contains(res.stdout, "team_platform") {
		t.Fatalf("audit ls --admin --all: %v\n%s", res.err, res.stdout)
	}
	if n := len(f.auditQueries); n != 3 || !strings.HasPrefix(f.auditQueries[1], "/v1/admin/audit-logs?") ||
		!strings.Contains(f.auditQueries[1], "scope=admin") || !strings.Contains(f.auditQueries[2], "cursor=page2") {
		t.Errorf("audit ls --admin --all sent %v", f.auditQueries)
	}

	for _, args := range [][]string{
		{"ls", "--action", "pause"},
		{"ls", "--scope", "admin"},
		{"ls", "--since", "last week"},
		{"ls", "--limit", "1001"},
		{"ls", "extra"},
	} {
		if res := f.run(t, Audit, "", args...); res.err == nil {
			t.Errorf("audit %v: no error", args)
		}
	}
	if len(f.auditQueries) != 3 {
		t.Errorf("misuse sent requests: %v", f.auditQueries[3:])
	}
	res = f.run(t, Audit, "", "ls", "--json")
	if res.err != nil || !strings.Contains(res.stdout, `"next_cursor": "page2"`) || !strings.Contains(res.stdout, `"action": "capsule.pause"`) {
		t.Errorf("audit ls --json: %v\n%s", res.err, res.stdout)
	}
}
