package cli

import (
	"strings"
	"testing"
	"time"
)

func TestParseMiB(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  string // a part of the error; "" means none
	}{
		{"512", 512, ""},
		{" 64 ", 64, ""},
		{"512Mi", 512, ""},
		{"512M", 512, ""},
		{"512MiB", 512, ""},
		{"2Gi", 2048, ""},
		{"2G", 2048, ""},
		{"2GiB", 2048, ""},
		{"1Ti", 1 << 20, ""},
		{"0", 0, "at least 1 MiB"},
		{"0Gi", 0, "at least 1 MiB"},
		{"-1", 0, "positive"},
		{"-2Gi", 0, "positive"},
		{"1.5Gi", 0, "whole number"},
		{"+5", 0, "whole number"},
		{"", 0, "whole number"},
		{"Gi", 0, "whole number"},
		{"2gb", 0, "whole number"},
		{"0x10", 0, "whole number"},
		{"1_000", 0, "whole number"},
		{"2048Ti", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
	} {
		got, err := parseMiB(tc.in)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("parseMiB(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseMiB(%q) = %d, %v; want an error saying %q", tc.in, got, err, tc.err)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"90s", 90 * time.Second, ""},
		{"30m", 30 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"500ms", 500 * time.Millisecond, ""},
		{"0", 0, "leave the flag out for the default"},
		{"0s", 0, "leave the flag out for the default"},
		{"-5m", 0, "positive"},
		{"300", 0, "give a unit, e.g. 300s"},
		{"5 minutes", 0, "want a duration"},
		{"", 0, "want a duration"},
		{"1000000h", 0, "too long"},
	} {
		got, err := parseTimeout(tc.in)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseTimeout(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.err)
		}
	}
	if s := timeoutFlag(500 * time.Millisecond).seconds(); s != 1 {
		t.Errorf("500ms is %d API seconds, want 1 (rounded up)", s)
	}
}

func TestParseCount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  string
	}{
		{"1", 1, ""},
		{"64", 64, ""},
		{"0", 0, "at least 1"},
		{"-2", 0, "at least 1"},
		{"two", 0, "whole number"},
		{"1.5", 0, "whole number"},
		{"99999999999", 0, "whole number"},
	} {
		got, err := parseCount(tc.in)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("parseCount(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseCount(%q) = %d, %v; want an error saying %q", tc.in, got, err, tc.err)
		}
	}
}

// FuzzParseMiB: any input is a size of 1 MiB to maxMiB, or an error; a
// size prints back as a number that parses to itself.
func FuzzParseMiB(f *testing.F) {
	for _, s := range []string{"512", "2Gi", "1Ti", "0", "-1", "1.5G", "99999999999999999999", "MiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseMiB(s)
		if err != nil {
			if v != 0 {
				t.Fatalf("parseMiB(%q) = %d with error %v", s, v, err)
			}
			return
		}
		if v < 1 || v > maxMiB {
			t.Fatalf("parseMiB(%q) = %d, out of range", s, v)
		}
		var m mibFlag
		if err := m.Set(m.String()); err == nil {
			t.Fatalf("an unset size flag's empty String parsed")
		}
		m = mibFlag(v)
		if back, err := parseMiB(m.String()); err != nil || back != v {
			t.Fatalf("parseMiB(%q) = %d, but its String %q parses to %d, %v", s, v, m.String(), back, err)
		}
	})
}

// FuzzParseTimeout: any input is a positive duration the API's int32
// seconds hold, or an error.
func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"90s", "0", "300", "-1m", "1h30m", "1e9h", "9223372036854775807ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseTimeout(s)
		if err != nil {
			return
		}
		if d <= 0 || d > (1<<31-1)*time.Second {
			t.Fatalf("parseTimeout(%q) = %v, out of range", s, d)
		}
		if sec := timeoutFlag(d).seconds(); sec < 1 || time.Duration(sec)*time.Second < d {
			t.Fatalf("parseTimeout(%q) = %v: %d API seconds", s, d, sec)
		}
	})
}

// FuzzParseCount: any input is at least 1 or an error.
func FuzzParseCount(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "64", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := parseCount(s); err == nil && v < 1 {
			t.Fatalf("parseCount(%q) = %d", s, v)
		}
	})
}
