package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// parseSize reads a byte size: a plain number of bytes or a number with a
// binary suffix Ki, Mi, Gi or Ti ("5Gi", "512Mi"), as Kubernetes writes
// them.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	num, shift := s, 0
	for i, suf := range []string{"Ki", "Mi", "Gi", "Ti"} {
		if n, ok := strings.CutSuffix(s, suf); ok {
			num, shift = n, 10*(i+1)
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid size %q: want bytes or a number with Ki, Mi, Gi or Ti", s)
	}
	if v > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return v << shift, nil
}
