package amtp

import "strings"

// Postmaster is the local-part this gateway sends its own mail as:
// delivery failure reports and workflow results come from
// postmaster@<domain>.
const Postmaster = "postmaster"

// reservedLocalParts are the local-parts this gateway sends as, now or
// once the email bridge lands, lower-case. An agent holding one could
// send mail that looks like the gateway's own (and, as postmaster, would
// never get a failure report), so none can be registered
// (PROTOCOL.md "Addresses").
var reservedLocalParts = []string{Postmaster, "mailer-daemon", "amtp-bridge"}

// ReservedLocalParts lists the reserved local-parts, lower-case.
func ReservedLocalParts() []string {
	return append([]string(nil), reservedLocalParts...)
}

// IsReservedLocalPart reports whether local is reserved. Local-parts
// match case-insensitively, as addresses do (Address.Key).
func IsReservedLocalPart(local string) bool {
	for _, r := range reservedLocalParts {
		if strings.EqualFold(local, r) {
			return true
		}
	}
	return false
}
