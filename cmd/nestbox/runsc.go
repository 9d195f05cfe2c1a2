package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// runscPlaces says where nestbox looks for runsc when neither --runsc nor
// NESTBOX_RUNSC names one, in this order: next to the nestbox binary (what
// `make run` builds), in <data-dir>/bin, then on PATH.
type runscPlaces struct {
	exeDir  string // directory of the running nestbox; "" when unknown
	dataDir string // the data directory; "" skips it
	path    string // the PATH list
}

// find returns the first runsc found, or an error naming every place it
// looked. A runsc on PATH may be a distribution's build without systrap:
// it is the last resort.
func (p runscPlaces) find() (string, error) {
	var looked []string
	try := func(dir string) string {
		if dir == "" {
			return ""
		}
		c := filepath.Join(dir, "runsc")
		looked = append(looked, c)
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return c
		}
		return ""
	}
	if c := try(p.exeDir); c != "" {
		return c, nil
	}
	if p.dataDir != "" {
		if c := try(filepath.Join(p.dataDir, "bin")); c != "" {
			return c, nil
		}
	}
	for _, dir := range filepath.SplitList(p.path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue // a relative PATH entry would depend on the working directory
		}
		if c := try(dir); c != "" {
			return c, nil
		}
	}
	if len(looked) == 0 {
		return "", errors.New("no runsc binary: no place to look (PATH is empty); build one with `make runsc` and pass --runsc or set NESTBOX_RUNSC")
	}
	return "", fmt.Errorf("no runsc binary: looked at %s; build one with `make runsc` and pass --runsc or set NESTBOX_RUNSC", strings.Join(looked, ", "))
}
