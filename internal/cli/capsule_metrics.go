package cli

import (
	"context"
	"fmt"
	"time"

	"nestbox.dev"
)

// capsuleMetrics is `nestbox capsule metrics`.
func capsuleMetrics(ctx context.Context, args []string, stdio IO) error {
	return showCapsule(ctx, args, stdio, "capsule metrics", "Show a capsule's resource use.", "print the sample as JSON",
		func(ctx context.Context, h *nestbox.Handle) (nestbox.Metrics, error) { return h.Metrics(ctx) },
		func(stdio IO, m nestbox.Metrics) error {
			t := newTable(stdio.Stdout, "CPU:", fmt.Sprintf("%.1f%% of %d vCPU", m.CPUUsedPct, m.CPUCount))
			t.row("Memory:", bytesIEC(m.MemoryUsedBytes)+" / "+bytesIEC(m.MemoryTotalBytes))
			t.row("Disk:", bytesIEC(m.DiskUsedBytes)+" / "+bytesIEC(m.DiskTotalBytes))
			t.row("Network:", "received "+bytesIEC(m.RxBytes)+", sent "+bytesIEC(m.TxBytes))
			t.row("At:", m.At.Local().Format(time.DateTime))
			return t.flush()
		})
}
