package gvisor

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/errdefs"
)

// runscEvent is the part of `runsc events --stats` we read.
type runscEvent struct {
	Data struct {
		CPU struct {
			Usage struct {
				Total uint64 `json:"total"`
			} `json:"usage"`
		} `json:"cpu"`
		Memory struct {
			Usage struct {
				Usage uint64 `json:"usage"`
			} `json:"usage"`
		} `json:"memory"`
		Pids struct {
			Current uint64 `json:"current"`
		} `json:"pids"`
		NetworkInterfaces []struct {
			Name    string `json:"name"`
			RxBytes uint64 `json:"rx_bytes"`
			TxBytes uint64 `json:"tx_bytes"`
		} `json:"network_interfaces"`
	} `json:"data"`
}

// Stats reads the sentry's own accounting with runsc events --stats.
func (d *Driver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	// One runsc process per reading (the agent samples every sandbox
	// periodically): events itself says when the ID is unknown.
	out, err := d.runsc(ctx, "events", "-stats", id)
	if err != nil {
		if isNotExist(err) {
			return driver.Stats{}, errdefs.NotFound("sandbox %s not found", id)
		}
		return driver.Stats{}, fmt.Errorf("stats of sandbox %s: %w", id, err)
	}
	var ev runscEvent
	if err := json.Unmarshal(out, &ev); err != nil {
		return driver.Stats{}, fmt.Errorf("stats of sandbox %s: parse: %w", id, err)
	}
	st := driver.Stats{
		At:          time.Now(),
		CPUNanos:    ev.Data.CPU.Usage.Total,
		MemoryBytes: ev.Data.Memory.Usage.Usage,
		Pids:        ev.Data.Pids.Current,
	}
	for _, ni := range ev.Data.NetworkInterfaces {
		if ni.Name == "lo" {
			continue
		}
		st.RxBytes += ni.RxBytes
		st.TxBytes += ni.TxBytes
	}
	return st, nil
}
