package cli

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// This file holds the parsers of the values users type into the verbs'
// flags: sizes, durations and counts. Each refuses what the server would
// otherwise turn into a surprise (0 meaning "the default", a bare number
// of seconds taken as a parse error) with a message that says what to type.

// maxMiB bounds a size flag: the API's fields are MiB in an int32 range.
const maxMiB = math.MaxInt32

// sizeUnits are the suffixes a size flag takes, in MiB. A number with no
// suffix is MiB, the unit of the API's memory_mb and disk_mb.
var sizeUnits = []struct {
	suffixes []string
	mib      int64
}{
	{[]string{"TiB", "Ti", "T"}, 1 << 20},
	{[]string{"GiB", "Gi", "G"}, 1 << 10},
	{[]string{"MiB", "Mi", "M"}, 1},
}

// parseMiB reads a size of at least 1 MiB: "512" (MiB), "512Mi", "2Gi",
// "1T". Suffixes are binary (G is GiB), as the API's sizes are.
func parseMiB(s string) (int, error) {
	num, unit := strings.TrimSpace(s), int64(1)
units:
	for _, u := range sizeUnits {
		for _, suf := range u.suffixes {
			if n, ok := strings.CutSuffix(num, suf); ok {
				num, unit = n, u.mib
				break units
			}
		}
	}
	if strings.HasPrefix(num, "-") {
		return 0, errors.New("a size must be positive")
	}
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return 0, errors.New("want a whole number of MiB, or one with Mi, Gi or Ti (e.g. 512, 2Gi)")
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v > maxMiB/unit {
		return 0, fmt.Errorf("too large (at most %d MiB)", maxMiB)
	}
	if v == 0 {
		return 0, errors.New("want at least 1 MiB (leave the flag out for the default)")
	}
	return int(v * unit), nil
}

// mibFlag is a size flag in MiB; zero means not given.
type mibFlag int

func (f *mibFlag) String() string {
	if f == nil || *f == 0 {
		return ""
	}
	return strconv.Itoa(int(*f))
}

func (f *mibFlag) Set(s string) error {
	v, err := parseMiB(s)
	if err != nil {
		return err
	}
	*f = mibFlag(v)
	return nil
}

// parseTimeout reads a positive duration, e.g. "90s", "30m", "1h30m". A
// bare number is refused with the unit to add, and zero with what it
// would have meant: leaving the flag out gives the server's default.
func parseTimeout(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	d, err := time.ParseDuration(t)
	if err != nil {
		if t != "" && strings.Trim(t, "0123456789") == "" {
			return 0, fmt.Errorf("give a unit, e.g. %ss or %sm", t, t)
		}
		return 0, errors.New("want a duration such as 90s, 30m or 1h30m")
	}
	switch {
	case d == 0:
		return 0, errors.New("want a positive duration such as 30m (leave the flag out for the default; 0 does not mean \"no limit\")")
	case d < 0:
		return 0, errors.New("a duration must be positive")
	case d > math.MaxInt32*time.Second:
		return 0, errors.New("too long")
	}
	return d, nil
}

// timeoutFlag is a positive duration flag; zero means not given.
type timeoutFlag time.Duration

func (f *timeoutFlag) String() string {
	if f == nil || *f == 0 {
		return ""
	}
	return time.Duration(*f).String()
}

func (f *timeoutFlag) Set(s string) error {
	d, err := parseTimeout(s)
	if err != nil {
		return err
	}
	*f = timeoutFlag(d)
	return nil
}

// seconds is d rounded up to whole seconds, as the API counts them.
func (f timeoutFlag) seconds() int {
	return int((time.Duration(f) + time.Second - 1) / time.Second)
}

// parseCount reads a whole number of at least 1, e.g. vCPUs.
func parseCount(s string) (int, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	switch {
	case err != nil:
		return 0, errors.New("want a whole number, e.g. 2")
	case v < 1:
		return 0, errors.New("want at least 1 (leave the flag out for the default)")
	}
	return int(v), nil
}

// countFlag is a flag of at least 1; zero means not given.
type countFlag int

func (f *countFlag) String() string {
	if f == nil || *f == 0 {
		return ""
	}
	return strconv.Itoa(int(*f))
}

func (f *countFlag) Set(s string) error {
	v, err := parseCount(s)
	if err != nil {
		return err
	}
	*f = countFlag(v)
	return nil
}
