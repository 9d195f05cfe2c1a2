package server

// RoutePatterns lists every route the server serves, from the tables
// behind Handler: its own (routes) and E2B's dialect's.
func RoutePatterns(s *Server) []string {
	var ps []string
	for _, r := range s.routes() {
		ps = append(ps, r.pattern)
	}
	for _, r := range s.e2b.Routes() {
		ps = append(ps, r.Pattern)
	}
	for _, r := range s.cfg.Extensions {
		ps = append(ps, r.Pattern)
	}
	return ps
}

// E2BRoutePatterns lists the routes of E2B's dialect alone.
func E2BRoutePatterns(s *Server) []string {
	var ps []string
	for _, r := range s.e2b.Routes() {
		ps = append(ps, r.Pattern)
	}
	return ps
}
