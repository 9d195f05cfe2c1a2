// Package metricstest reads a Prometheus registry in tests: the value of
// one series, how many series a metric has, and the exposition text a
// /metrics handler serves parsed back into families. Only tests import it.
package metricstest

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families gathers g, failing the test on an error.
func Families(t testing.TB, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// Parse parses exposition text (what GET /metrics answers), failing the
// test if it is not valid.
func Parse(t testing.TB, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// Value is the value of the series of family name whose labels include
// labels (pairs: "op", "create", ...; "tier", "" for a series without
// that label): a counter's or gauge's value, a
// histogram's sample count. A series that does not exist is 0; labels
// matching more than one series fail the test.
func Value(t testing.TB, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	if len(labels)%2 != 0 {
		t.Fatalf("metricstest.Value(%s): odd label list %v", name, labels)
	}
	f, ok := fams[name]
	if !ok {
		return 0
	}
	var found []*dto.Metric
	for _, m := range f.GetMetric() {
		if matches(m, labels) {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		return 0
	case 1:
	default:
		t.Fatalf("%s%v matches %d series: name every label", name, labels, len(found))
	}
	m := found[0]
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	t.Fatalf("%s%v: no value of a type this helper reads", name, labels)
	return 0
}

// Series is how many series family name has (0 if there is none).
func Series(fams map[string]*dto.MetricFamily, name string) int {
	return len(fams[name].GetMetric())
}

// LabelValues lists the distinct values label takes in family name,
// sorted.
func LabelValues(fams map[string]*dto.MetricFamily, name, label string) []string {
	seen := map[string]bool{}
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				seen[l.GetValue()] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Describe lists a family's series as name{labels} value, for failure
// messages.
func Describe(fams map[string]*dto.MetricFamily, name string) string {
	var b strings.Builder
	for _, m := range fams[name].GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		fmt.Fprintf(&b, "%s{%s} %g\n", name, strings.Join(ls, ","), v)
	}
	return b.String()
}

// matches reports whether m has every label pair; an empty value also
// matches a label m lacks (the exposition format drops empty labels).
func matches(m *dto.Metric, labels []string) bool {
	for i := 0; i < len(labels); i += 2 {
		got := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] {
				got = l.GetValue()
			}
		}
		if got != labels[i+1] {
			return false
		}
	}
	return true
}
