package nestbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"nestbox.dev"
)

// Create a capsule, run a command in it and destroy it. The URL and key
// come from NESTBOX_URL and NESTBOX_API_KEY.
func Example() {
	ctx := context.Background()
	c, err := nestbox.New(nestbox.Config{})
	if err != nil {
		log.Fatal(err)
	}
	h, err := c.Create(ctx, nestbox.CreateCapsuleRequest{Template: "base", TimeoutSeconds: 600})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Kill(context.WithoutCancel(ctx))

	res, err := h.Exec(ctx, []string{"uname", "-a"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
}

func ExampleNew() {
	c, err := nestbox.New(nestbox.Config{
		URL:       "http://127.0.0.1:8080",
		APIKey:    os.Getenv("MY_NESTBOX_KEY"),
		UserAgent: "my-agent/1.0",
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = c
}

func ExampleAPIError() {
	c, _ := nestbox.New(nestbox.Config{})
	_, err := c.Get(context.Background(), "cap_unknown")
	switch {
	case errors.Is(err, nestbox.ErrNotFound):
		fmt.Println("no such capsule")
	case err != nil:
		var apiErr *nestbox.APIError
		if errors.As(err, &apiErr) {
			fmt.Println("API said", apiErr.Code, apiErr.Message)
		}
	}
}

func ExampleClient_Create_noWait() {
	ctx := context.Background()
	c, _ := nestbox.New(nestbox.Config{})
	h, err := c.Create(ctx, nestbox.CreateCapsuleRequest{Metadata: map[string]string{"job": "42"}}, nestbox.NoWait())
	if err != nil {
		log.Fatal(err)
	}
	// ... do other work, then:
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := h.Wait(ctx, nestbox.StatusRunning); err != nil {
		log.Fatal(err)
	}
}

func ExampleClient_ListAll() {
	ctx := context.Background()
	c, _ := nestbox.New(nestbox.Config{})
	opts := nestbox.ListOptions{
		Status:   []nestbox.Status{nestbox.StatusRunning},
		Metadata: map[string]string{"job": "42"},
	}
	for cp, err := range c.ListAll(ctx, opts) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(cp.ID, cp.Status, cp.ExpiresAt)
	}
}

func ExampleHandle_Exec() {
	ctx := context.Background()
	c, _ := nestbox.New(nestbox.Config{})
	h := c.Capsule("cap_123")
	res, err := h.Exec(ctx, []string{"python3", "-c", "import sys; print(sys.stdin.read().upper())"},
		nestbox.WithStdin([]byte("hello")),
		nestbox.WithCwd("/tmp"),
		nestbox.WithEnv(map[string]string{"PYTHONUNBUFFERED": "1"}),
		nestbox.WithTimeout(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.ExitCode, res.Stdout, res.Stderr)
}

func ExampleHandle_ExecStream() {
	ctx := context.Background()
	c, _ := nestbox.New(nestbox.Config{})
	h := c.Capsule("cap_123")
	p, err := h.ExecStream(ctx, nestbox.ExecRequest{Cmd: []string{"sh", "-c", "cat; echo done >&2"}},
		nestbox.WithOutput(os.Stdout, os.Stderr))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	io.WriteString(p.Stdin(), "streamed input\n")
	p.Stdin().Close()
	code, err := p.Wait()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exit code", code)
}

func ExampleHandle_Start() {
	ctx := context.Background()
	c, _ := nestbox.New(nestbox.Config{})
	h := c.Capsule("cap_123")
	if _, err := h.Start(ctx, []string{"python3", "-m", "http.server", "8000"}, nestbox.WithTag("web")); err != nil {
		log.Fatal(err)
	}
	// Later, perhaps from another program: follow its output.
	p, err := h.AttachTag(ctx, "web")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	io.Copy(os.Stdout, p.Stdout())
}

func ExampleHandle_PTY() {
	ctx := context.Background()
	c, _ := nestbox.New(nestbox.Config{})
	term, err := c.Capsule("cap_123").PTY(ctx, nestbox.PTYOptions{Cols: 120, Rows: 40, Tag: "main"})
	if err != nil {
		log.Fatal(err)
	}
	defer term.Close()
	go io.Copy(os.Stdout, term)
	io.WriteString(term, "ls -la; exit\r")
	code, _ := term.Wait()
	fmt.Println("shell exited with", code)
}

func ExampleHandle_WriteFile() {
	ctx := context.Background()
	c, _ := nestbox.New(nestbox.Config{})
	h := c.Capsule("cap_123")
	f, err := os.Open("dataset.csv")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	// The file is streamed, never held in memory whole.
	if _, err := h.WriteFile(ctx, "/home/user/dataset.csv", f); err != nil {
		log.Fatal(err)
	}
	r, err := h.ReadFile(ctx, "/home/user/dataset.csv")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	io.Copy(os.Stdout, r)
}

func ExampleHandle_ProxyURL() {
	ctx := context.Background()
	c, _ := nestbox.New(nestbox.Config{})
	url := c.Capsule("cap_123").ProxyURL(8000) + "index.html"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)
}

func ExampleClient_CreateKey() {
	c, _ := nestbox.New(nestbox.Config{})
	k, err := c.CreateKey(context.Background(), "ci")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("NESTBOX_API_KEY=" + k.Key)
	fmt.Println("E2B_API_KEY=" + k.E2BKey())
}
