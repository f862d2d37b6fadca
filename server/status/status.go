// Package status is stokerd's status page: plain HTML, CSS and JavaScript
// embedded in the binary (no build step), and the JSON document the page
// polls (Snapshot, served by the server at /v1/status). The page is
// read-only; it is served behind the HTTP port's authentication like every
// other path. It imports nothing of Stoker: the server fills its types.
package status

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Path is where the JSON snapshot is served; the page polls it.
const Path = "/v1/status"

// Handler serves the page: GET / (index.html) and its files under
// /status/ (app.js, style.css). Every answer forbids framing and sniffing
// and allows only this origin's scripts and styles.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		switch r.URL.Path {
		case "/", "/index.html":
			http.ServeFileFS(w, r, sub, "index.html")
		case "/status/app.js", "/status/style.css":
			r2 := r.Clone(r.Context())
			r2.URL.Path = r.URL.Path[len("/status"):]
			files.ServeHTTP(w, r2)
		default:
			http.NotFound(w, r)
		}
	})
}
