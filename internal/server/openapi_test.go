package server

import (
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestOpenAPIMatchesRoutes checks that openapi.yaml documents exactly the
// routes the server serves, method by method.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var spec struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openAPISpec, &spec); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	var documented []string
	for path, ops := range spec.Paths {
		if strings.HasPrefix(path, "/proxy/") {
			continue // served in front of the mux, checked below
		}
		for method := range ops {
			switch method {
			case "get", "post", "put", "delete", "patch":
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	var served []string
	for _, r := range (&Server{}).routes() {
		if r.prefix != "" {
			continue // the port proxy, checked below
		}
		served = append(served, r.pattern)
	}
	slices.Sort(documented)
	slices.Sort(served)
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("route %q is served but not in openapi.yaml", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("openapi.yaml documents %q, which is not served", d)
		}
	}
	if _, ok := spec.Paths["/proxy/{id}/{port}/{path}"]; !ok {
		t.Error("openapi.yaml does not document the port proxy")
	}
}
