package gvisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestProcessExit(t *testing.T) {
	cmd := exec.Command("sleep", "0.2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p := pidExit(cmd.Process.Pid)
	defer p.close()
	if p.fd < 0 {
		t.Fatal("no pidfd of a running process")
	}
	if err := p.wait(context.Background()); err != nil {
		t.Fatalf("wait: %v", err)
	}
	// Exited: a zombie until the goroutine above reaps it, or gone.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)); err == nil {
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] != "Z" {
			t.Fatalf("wait returned while the process is in state %s", f[2])
		}
	}
	<-exited

	// A process that does not exit: wait ends with the context.
	long := exec.Command("sleep", "60")
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	defer long.Process.Kill()
	q := pidExit(long.Process.Pid)
	defer q.close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := q.wait(ctx); err == nil {
		t.Fatal("wait on a running process returned without error")
	}
	if (processExit{fd: -1}).wait(context.Background()) != nil {
		t.Fatal("the zero wait failed")
	}
}
