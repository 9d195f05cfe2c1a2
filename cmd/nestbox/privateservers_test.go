package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"nestbox.dev/internal/testenv"
)

// privatePostgres is a PostgreSQL server of one test, started from the
// binaries scripts/test-services.sh uses but with its own cluster, port
// and socket directory: the test may stop and start it without touching
// the server every other test shares.
type privatePostgres struct {
	t     testing.TB
	pgCtl string
	dir   string
	port  int
}

// startPrivatePostgres makes a cluster in a new directory and starts it;
// at the end of the test it is stopped and removed.
func startPrivatePostgres(t testing.TB) *privatePostgres {
	t.Helper()
	ctls, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(ctls) == 0 {
		testenv.Missing(t, "no PostgreSQL server binaries (make test-deps installs them)")
	}
	slices.SortFunc(ctls, func(a, b string) int { return pgMajor(a) - pgMajor(b) })
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		testenv.Missing(t, "no postgres account: "+err.Error())
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	dir, err := os.MkdirTemp("", "nestbox-test-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	p := &privatePostgres{t: t, pgCtl: ctls[len(ctls)-1], dir: dir, port: freePort(t)}
	t.Cleanup(func() {
		p.ctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	initdb := filepath.Join(filepath.Dir(p.pgCtl), "initdb")
	if out, err := asPostgres(initdb, "-D", dir, "-U", "postgres", "-A", "trust", "--locale=C.UTF-8", "--encoding=UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.start()
	return p
}

func pgMajor(pgCtl string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(pgCtl))))
	return n
}

// asPostgres is a command run as the postgres account, in a locale that
// always exists.
func asPostgres(name string, args ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", "postgres", "--", "env", "LC_ALL=C.UTF-8", name}, args...)...)
}

func (p *privatePostgres) ctl(args ...string) ([]byte, error) {
	return asPostgres(p.pgCtl, append([]string{"-D", p.dir}, args...)...).CombinedOutput()
}

// start starts the server and waits until it accepts connections.
func (p *privatePostgres) start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c max_connections=200", p.port, p.dir)
	if out, err := p.ctl("-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
		p.t.Fatalf("start PostgreSQL: %v\n%s\n%s", err, out, log)
	}
}

// stop stops the server as a crash would (immediate: no checkpoint,
// every connection cut).
func (p *privatePostgres) stop() {
	p.t.Helper()
	if out, err := p.ctl("stop", "-m", "immediate", "-w"); err != nil {
		p.t.Fatalf("stop PostgreSQL: %v\n%s", err, out)
	}
}

// adminURL is the server's postgres database.
func (p *privatePostgres) adminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// createDatabase makes a database and returns its URL.
func (p *privatePostgres) createDatabase(name string) string {
	p.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.adminURL())
	if err != nil {
		p.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		p.t.Fatal(err)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, name)
}

// privateRedis is a Redis server of one test, without persistence: a
// restart loses every stream entry, the worst a restart can do to the
// event stream.
type privateRedis struct {
	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
}

func startPrivateRedis(t testing.TB) *privateRedis {
	t.Helper()
	testenv.RequireCommand(t, "redis-server")
	r := &privateRedis{t: t, dir: t.TempDir(), port: freePort(t)}
	t.Cleanup(r.stop)
	r.start()
	return r
}

func (r *privateRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// start starts the server and waits until it answers.
func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	defer c.Close()
	for deadline := time.Now().Add(30 * time.Second); c.Ping(context.Background()).Err() != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("Redis did not start:\n%s", log)
		}
	}
}

// stop kills the server (SIGKILL: no goodbye to its clients).
func (r *privateRedis) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// freePort returns a loopback TCP port nobody listens on.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
