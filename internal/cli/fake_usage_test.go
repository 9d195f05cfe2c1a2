package cli

import (
	"net/http"
	"time"
)

// usageRoutes serves GET /v1/capsules/usage from f.usage, recording each
// query; a range of from after to is refused as the server does.
func (f *fakeServer) usageRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/capsules/usage", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		q := r.URL.Query()
		f.usageQueries = append(f.usageQueries, q.Encode())
		from, _ := time.Parse(time.DateOnly, q.Get("from"))
		to, _ := time.Parse(time.DateOnly, q.Get("to"))
		if from.After(to) {
			fakeError(w, http.StatusBadRequest, "invalid_argument", "from is after to")
			return
		}
		fakeJSON(w, http.StatusOK, f.usage)
	})
}
