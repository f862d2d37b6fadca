package server

import "net/http"

// httpAuthorization is the bearer credential of an HTTP request: its
// Authorization header, or for a GET or HEAD with HTTP Basic credentials
// the password as a bearer token (the user name is ignored). A browser
// cannot send a bearer token, but it asks for Basic credentials when told
// to, keeps them for the origin and sends them with the status page's
// polls; reads only, so a cached password cannot start a prefetch.
func httpAuthorization(r *http.Request) string {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if _, password, ok := r.BasicAuth(); ok {
			return "Bearer " + password
		}
	}
	return r.Header.Get("Authorization")
}
