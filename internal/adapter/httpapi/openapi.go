package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"

	apidocs "github.com/agentry/agentry/docs"
)

// Route is one path pattern the handler serves (ServeMux syntax) and the
// methods it takes there, sorted. HEAD is answered wherever GET is and is
// not listed. Tests hold docs/openapi.yaml to this table.
type Route struct {
	Pattern string
	Methods []string
}

// Routes lists the handler's routes in the order they were registered.
func (h *Handler) Routes() []Route {
	out := make([]Route, len(h.routes))
	for i, r := range h.routes {
		out[i] = Route{Pattern: r.Pattern, Methods: slices.Clone(r.Methods)}
	}
	return out
}

func isHead(m string) bool { return m == http.MethodHead }

// specCacheControl lets clients and proxies keep the document for a few
// minutes and then revalidate it by its entity tag: it changes only when
// the gateway is upgraded.
const specCacheControl = "public, max-age=300"

// apiDocument is docs/openapi.yaml as JSON with its entity tag.
type apiDocument struct {
	json []byte
	etag string
}

// loadAPIDocument converts the embedded document (once per process). It
// panics when the document does not convert, as route does for a bad
// pattern: the document is part of the build, and a test converts it.
func loadAPIDocument() apiDocument {
	data, err := apidocs.JSON()
	if err != nil {
		panic("httpapi: " + err.Error())
	}
	sum := sha256.Sum256(data)
	return apiDocument{json: data, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`}
}

// serveAPIDocument answers GET /v1/openapi.json, to anyone.
func (h *Handler) serveAPIDocument(doc apiDocument) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", doc.etag)
		w.Header().Set("Cache-Control", specCacheControl)
		if etagMatches(r.Header.Get("If-None-Match"), doc.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		writeRaw(w, http.StatusOK, doc.json)
	}
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110, 13.1.2):
// any listed tag equal to etag once W/ is dropped, or "*".
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	// Bounded: a header line is at most the server's header limit, and a
	// tag list longer than that many entries cannot hold a match anyway.
	for i, tag := range strings.SplitN(header, ",", 64) {
		if i == 63 {
			return false
		}
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}
