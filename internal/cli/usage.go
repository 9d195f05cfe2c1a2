package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"nestbox.dev"
)

// usageBarWidth is the width of the longest bar of `nestbox usage`'s chart.
const usageBarWidth = 30

// Usage runs `nestbox usage`: the team's usage per day, as a table with a
// bar chart of vCPU-hours, and in total.
func Usage(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "usage", "[flags]", "Show the team's capsule usage per UTC day (by default the last 30 days) and in total.\nvCPU, memory and disk are by allocation times the hours capsules ran; CPU USED is measured.")
	from := c.fs.String("from", "", "first day `YYYY-MM-DD`, UTC (default: 29 days before --to)")
	to := c.fs.String("to", "", "last day `YYYY-MM-DD`, included (default: today); at most 92 days from --from")
	jsonOut := c.fs.Bool("json", false, "print the report as JSON")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	var opts nestbox.UsageOptions
	for _, f := range []struct {
		name, v string
		dst     *time.Time
	}{{"--from", *from, &opts.From}, {"--to", *to, &opts.To}} {
		if f.v == "" {
			continue
		}
		d, err := time.Parse(time.DateOnly, f.v)
		if err != nil {
			return c.usageError(fmt.Sprintf("%s %q: want a date, YYYY-MM-DD", f.name, f.v))
		}
		*f.dst = d
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	r, err := client.Usage(ctx, opts)
	if err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdio.Stdout, r)
	}
	return printUsage(stdio.Stdout, r)
}

// printUsage writes the report's table: a row per day with a bar of its
// vCPU-hours (scaled to the busiest day), then the total.
func printUsage(w io.Writer, r nestbox.UsageReport) error {
	var most int64
	live := false
	for _, d := range r.Days {
		most = max(most, d.VCPUSeconds)
		live = live || d.Live
	}
	t := newTable(w, "DATE", "CAPSULES", "VCPU-H", "MEMORY GIB-H", "DISK GIB-H", "CPU-H USED", "")
	for _, d := range r.Days {
		date := d.Date
		if d.Live {
			date += "*"
		}
		t.row(date, fmt.Sprint(d.Capsules), hours(float64(d.VCPUSeconds)), hours(d.MemoryGiBSeconds), hours(d.DiskGiBSeconds),
			hours(d.CPUSecondsUsed), bar(d.VCPUSeconds, most, usageBarWidth))
	}
	t.row("TOTAL", "", hours(float64(r.Total.VCPUSeconds)), hours(r.Total.MemoryGiBSeconds), hours(r.Total.DiskGiBSeconds), hours(r.Total.CPUSecondsUsed), " ")
	if err := t.flush(); err != nil {
		return err
	}
	if live {
		_, err := fmt.Fprintln(w, "* computed from the samples now: may still grow")
		return err
	}
	return nil
}

// hours writes an amount of seconds in hours, two decimals.
func hours(seconds float64) string { return fmt.Sprintf("%.2f", seconds/3600) }

// bar is a bar of v out of most, at most width cells wide, in eighths of a
// cell; a value above zero gets at least an eighth, so that a day with
// any use is never blank.
func bar(v, most int64, width int) string {
	if v <= 0 || most <= 0 {
		return " "
	}
	eighths := int(math.Round(float64(v) / float64(most) * float64(width*8)))
	eighths = max(eighths, 1)
	partial := []string{"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"}
	return strings.Repeat("█", eighths/8) + partial[eighths%8]
}
