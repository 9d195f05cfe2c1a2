package server

import (
	"fmt"
	"net/url"
	"testing"

	"nestbox.dev/internal/e2bcompat"
	"nestbox.dev/internal/envd/auth"
)

// BenchmarkSignedURLScan measures what routing one header-less signed URL
// costs the control plane when it names no running capsule (the worst
// case: every token is checked), per number of running capsules.
func BenchmarkSignedURLScan(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("capsules=%d", n), func(b *testing.B) {
			x := &tokenIndex{tokens: map[string]string{}}
			for i := range n {
				x.tokens[fmt.Sprintf("c%019d", i)] = fmt.Sprintf("token-%d", i)
			}
			q := url.Values{"path": {"/home/user/f"}, "signature": {auth.Sign("/home/user/f", auth.OpRead, "", "nobody's", 0)}}
			for b.Loop() {
				if id := x.scan(func(tok string) bool { return e2bcompat.SignatureMatches("GET", q, tok) }); id != "" {
					b.Fatalf("matched %s", id)
				}
			}
		})
	}
}
