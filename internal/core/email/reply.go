package email

import (
	"slices"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
)

// idPrefix marks the Message-ID of an email the bridge rendered:
// <amtp.{AMTP message id}@{bridge domain}>.
const idPrefix = "amtp."

// bridgedMessageID is the RFC 5322 msg-id (without angle brackets) of the
// email that carries the AMTP message id, sent from domain.
func bridgedMessageID(id, domain string) string {
	return idPrefix + id + "@" + domain
}

// BridgedMessageID is the Message-ID (without angle brackets) Render gives
// the email carrying AMTP message id from the bridge of domain.
func BridgedMessageID(id, domain string) string {
	return bridgedMessageID(amtp.NormalizeMessageID(id), strings.ToLower(domain))
}

// RepliesTo returns the AMTP message id of a bridged message of ours
// (rendered by Render for domain) that e answers: the first such id in
// In-Reply-To, else the newest in References.
func (e *Email) RepliesTo(domain string) (string, bool) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" {
		return "", false
	}
	for _, ref := range e.InReplyTo {
		if id, ok := bridgedID(ref, domain); ok {
			return id, true
		}
	}
	for _, ref := range slices.Backward(e.References) {
		if id, ok := bridgedID(ref, domain); ok {
			return id, true
		}
	}
	return "", false
}

// bridgedID reads the AMTP message id out of a msg-id Render made for
// domain.
func bridgedID(ref, domain string) (string, bool) {
	at := strings.LastIndexByte(ref, '@')
	if at < 0 || !strings.EqualFold(ref[at+1:], domain) {
		return "", false
	}
	local := ref[:at]
	if len(local) <= len(idPrefix) || !strings.EqualFold(local[:len(idPrefix)], idPrefix) {
		return "", false
	}
	id := local[len(idPrefix):]
	if !amtp.ValidMessageID(id) {
		return "", false
	}
	return amtp.NormalizeMessageID(id), true
}
