package cli

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestHelp(t *testing.T) {
	groups := map[string]struct {
		run   func(context.Context, []string, IO) error
		verbs []verb
	}{
		"capsule":  {Capsule, capsuleVerbs},
		"key":      {Key, keyVerbs},
		"template": {Template, templateVerbs},
		"audit":    {Audit, auditVerbs},
		"account":  {Account, accountVerbs},
		"team":     {Team, teamVerbs},
	}
	f := newFakeServer(t)
	for name, g := range groups {
		for _, h := range []string{"--help", "-h", "help"} {
			res := f.run(t, g.run, "", h)
			if !errors.Is(res.err, flag.ErrHelp) || !strings.Contains(res.stdout, "Usage: nestbox "+name) {
				t.Errorf("%s %s: err %v, stdout %q", name, h, res.err, res.stdout)
			}
		}
		for _, v := range g.verbs {
			for _, h := range []string{"--help", "-h"} {
				res := f.run(t, g.run, "", v.name, h)
				if !errors.Is(res.err, flag.ErrHelp) {
					t.Errorf("%s %s %s: err = %v, want flag.ErrHelp", name, v.name, h, res.err)
				}
				if !strings.Contains(res.stdout, "Usage: nestbox "+name+" "+v.name) || !strings.Contains(res.stdout, "-api-key") {
					t.Errorf("%s %s %s: usage %q", name, v.name, h, res.stdout)
				}
			}
		}
	}
}

func TestMisuse(t *testing.T) {
	f := newFakeServer(t)
	tests := []struct {
		run  func(context.Context, []string, IO) error
		args []string
	}{
		{Capsule, nil},
		{Capsule, []string{"frobnicate"}},
		{Capsule, []string{"get"}},
		{Capsule, []string{"get", "a", "b"}},
		{Capsule, []string{"ls", "--bogus"}},
		{Capsule, []string{"ls", "--limit", "-1"}},
		{Capsule, []string{"create", "--env", "novalue"}},
		{Capsule, []string{"rm"}},
		{Key, []string{"rm"}},
		{Template, []string{"ls", "extra"}},
	}
	for _, tt := range tests {
		res := f.run(t, tt.run, "", tt.args...)
		if res.err == nil || errors.Is(res.err, flag.ErrHelp) {
			t.Errorf("%q: err = %v, want a usage error", tt.args, res.err)
		}
		if res.stdout != "" {
			t.Errorf("%q: stdout %q, want nothing", tt.args, res.stdout)
		}
	}
}
