package cli

import (
	"context"
	"fmt"
	"time"
)

// capsuleMetrics is `nestbox capsule metrics`.
func capsuleMetrics(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "capsule metrics", "[flags] ID", "Show a capsule's resource use.")
	jsonOut := c.fs.Bool("json", false, "print the sample as JSON")
	pos, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	client, err := c.client()
	if err != nil {
		return err
	}
	m, err := client.Capsule(pos[0]).Metrics(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdio.Stdout, m)
	}
	t := newTable(stdio.Stdout, "CPU:", fmt.Sprintf("%.1f%% of %d vCPU", m.CPUUsedPct, m.CPUCount))
	t.row("Memory:", bytesIEC(m.MemoryUsedBytes)+" / "+bytesIEC(m.MemoryTotalBytes))
	t.row("Disk:", bytesIEC(m.DiskUsedBytes)+" / "+bytesIEC(m.DiskTotalBytes))
	t.row("Network:", "received "+bytesIEC(m.RxBytes)+", sent "+bytesIEC(m.TxBytes))
	t.row("At:", m.At.Local().Format(time.DateTime))
	return t.flush()
}
