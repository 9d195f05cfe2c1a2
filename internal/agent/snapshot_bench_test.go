package agent

import (
	"testing"
	"time"

	"nestbox.dev/internal/capsulespec"
)

// BenchmarkSnapshot measures, through the agent's API, CreateSnapshot of
// a sandbox that is idle or holds 100 MiB in memory (the checkpoint, the
// links of the images, the sparse copy of the layer, the source's
// restore, the metadata and the rename), then CreateSandbox from that
// snapshot until it returns (the layer copy, the links, the checksum
// check, the restore, envd's /init) and the first command in it (an exec
// of `true` through envd). The sandbox and the snapshot are removed
// between iterations, untimed. Compare with BenchmarkBareCheckpoint (bare
// runsc checkpoint and restore of the same sizes) in the same run.
func BenchmarkSnapshot(b *testing.B) {
	for _, size := range pauseSizes[:2] {
		b.Run(size.name, func(b *testing.B) {
			h := newTestHost(b)
			ta := h.startAgent(b, "", nil)
			src := benchSandbox(b, ta, size.mib)
			var snap, restore, first []time.Duration
			b.ResetTimer()
			for range b.N {
				sid := capsulespec.NewID()
				start := time.Now()
				if _, err := ta.snapshotRPC(src.Id, sid); err != nil {
					b.Fatalf("snapshot: %v", err)
				}
				snap = append(snap, time.Since(start))
				start = time.Now()
				sb, err := ta.fromSnapshot(sid, "bench", nil)
				if err != nil {
					b.Fatalf("create from the snapshot: %v", err)
				}
				restore = append(restore, time.Since(start))
				start = time.Now()
				mustSh(b, ta.process(sb.Id, "bench", "root"), "true")
				first = append(first, time.Since(start))
				b.StopTimer()
				ta.destroyRPC(b, sb.Id)
				ta.deleteSnapshotRPC(b, sid)
				b.StartTimer()
			}
			b.StopTimer()
			reportNamed(b, "snapshot", snap)
			reportNamed(b, "restore", restore)
			reportNamed(b, "first-exec", first)
			for i := range restore {
				restore[i] += first[i]
			}
			reportNamed(b, "restore-to-exec", restore)
		})
	}
}

// BenchmarkSnapshotPooled measures a create from a snapshot that has a
// warm pool of one (SetSnapshotPools): CreateSandbox until it returns
// (the claim: the state file, the egress rules, one /init) and the first
// command, against BenchmarkSnapshot's restore in the same run. Between
// iterations the pool refills, untimed.
func BenchmarkSnapshotPooled(b *testing.B) {
	h := newTestHost(b)
	ta := h.startAgent(b, "", nil)
	src := benchSandbox(b, ta, 0)
	sid := capsulespec.NewID()
	if _, err := ta.snapshotRPC(src.Id, sid); err != nil {
		b.Fatalf("snapshot: %v", err)
	}
	if err := ta.setSnapshotPoolsRPC(map[string]uint32{sid: 1}); err != nil {
		b.Fatal(err)
	}
	var create, first []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		eventually(b, time.Minute, "a pooled sandbox of the snapshot", func() bool { return len(ta.pooledOf(sid)) == 1 })
		b.StartTimer()
		start := time.Now()
		sb, err := ta.fromSnapshot(sid, "bench", nil)
		if err != nil {
			b.Fatalf("create from the snapshot: %v", err)
		}
		create = append(create, time.Since(start))
		start = time.Now()
		mustSh(b, ta.process(sb.Id, "bench", "root"), "true")
		first = append(first, time.Since(start))
		b.StopTimer()
		if ta.runtimeOf(b, sb.Id) == sb.Id {
			b.Fatal("the create was not served from the pool")
		}
		ta.destroyRPC(b, sb.Id)
		b.StartTimer()
	}
	b.StopTimer()
	reportNamed(b, "create", create)
	for i := range create {
		create[i] += first[i]
	}
	reportNamed(b, "create-to-exec", create)
	ta.setSnapshotPoolsRPC(nil)
	ta.deleteSnapshotRPC(b, sid)
}
