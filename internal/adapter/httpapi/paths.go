package httpapi

import (
	"net/url"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
)

// canonicalPath reports whether p is a path that ServeMux routes as it
// is: absolute, with no "." or ".." segment and no empty segment but a
// trailing one. ServeMux answers any other path itself with a redirect
// to the cleaned path (an HTML body, and a route that a proxy or API
// Gateway in front of us never matched), so such paths are refused
// before it sees them. p is the decoded path: it holds every segment of
// the escaped one and more, so encoded dots and slashes that a decoding
// proxy would clean away are refused too, while one encoded slash inside
// a segment (the admin's <message_id>%2F<recipient>) is not.
func canonicalPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/")
	if !ok {
		return false
	}
	for rest != "" {
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "." || seg == ".." || (seg == "" && more) {
			return false
		}
		rest = tail
	}
	return true
}

// errNotCanonical answers a path canonicalPath refuses. It names no
// endpoint: the path is not echoed, and no cleaned form is suggested.
func errNotCanonical() error {
	return amtp.Errorf(amtp.CodeNotFound, "no such endpoint: paths have no empty, \".\" or \"..\" segments")
}

// belowOAuthPrefix returns u's path without OAuthPrefix, decoded and
// escaped, and whether u is under the prefix at all. The prefix is cut
// from the escaped path, whose segments ServeMux routes on: an encoded
// slash further on stays encoded, and routes exactly as it would without
// the prefix (decoding it would make one segment two).
func belowOAuthPrefix(u *url.URL) (path, rawPath string, ok bool) {
	first, rest, found := strings.Cut(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	if !found {
		return "", "", false
	}
	// ServeMux compares each segment unescaped, and so does this.
	if seg, err := url.PathUnescape(first); err != nil || seg != OAuthPrefix[1:] {
		return "", "", false
	}
	rawPath = "/" + rest
	path, err := url.PathUnescape(rawPath)
	if err != nil {
		return "", "", false
	}
	return path, rawPath, true
}
