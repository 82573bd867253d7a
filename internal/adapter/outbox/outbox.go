// Package outbox is the local SMTP bridge transport a developer looks at:
// each bridged email becomes one .eml file in a folder
// (delivery.EmailTransport).
package outbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/usecase/delivery"
)

// Outbox writes emails into one folder.
type Outbox struct {
	dir string
}

var _ delivery.EmailTransport = (*Outbox)(nil)

// New opens (and creates, 0700) the folder dir.
func New(dir string) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("outbox: no folder")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: create %s: %w", dir, err)
	}
	// The mail of every agent lands here: only the gateway's user reads it.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: protect %s: %w", dir, err)
	}
	return &Outbox{dir: dir}, nil
}

// Dir is the folder the files are written to.
func (o *Outbox) Dir() string { return o.dir }

// SendEmail writes e.Raw as <time>-<digest>.eml, where time is the email's
// Date (UTC) and digest names its Message-ID and recipient: the names sort
// by time, and a retried send finds its file already there instead of
// writing a second one. The file appears whole or not at all (written to
// a temporary file, synced, then linked into place). The provider id is
// the file name.
func (o *Outbox) SendEmail(ctx context.Context, e delivery.OutboundEmail) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if len(e.Raw) == 0 || e.To == "" {
		return "", &delivery.EmailRejected{Reason: "empty email or no recipient"}
	}
	name := fileName(e)
	final := filepath.Join(o.dir, name)
	if _, err := os.Lstat(final); err == nil {
		return name, nil
	}
	if err := o.place(final, e.Raw); err != nil {
		return "", fmt.Errorf("outbox: write %s: %w", name, err)
	}
	return name, nil
}

// place writes raw to final atomically; an existing final is left alone.
func (o *Outbox) place(final string, raw []byte) error {
	tmp, err := os.CreateTemp(o.dir, ".partial-*.eml")
	if err != nil {
		return err
	}
	// Gone already once renamed into place; only a failed write leaves it.
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(raw); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// A link, unlike a rename, never replaces a file a concurrent retry
	// placed first.
	if err := os.Link(tmp.Name(), final); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(o.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}

// fileName is <UTC date>-<sha256 of Message-ID and recipient, 24 hex>.eml.
// Without a readable Date the name starts with the current time, without a
// Message-ID the digest covers the whole email.
func fileName(e delivery.OutboundEmail) string {
	date, id := headerFacts(e.Raw)
	if date.IsZero() {
		date = time.Now()
	}
	d := sha256.New()
	if id != "" {
		d.Write([]byte("id:" + id))
	} else {
		d.Write([]byte("raw:"))
		d.Write(e.Raw)
	}
	d.Write([]byte{0})
	d.Write([]byte(strings.ToLower(e.To)))
	return date.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(d.Sum(nil))[:24] + ".eml"
}

// headerFacts reads Date and Message-ID from the header of raw.
func headerFacts(raw []byte) (time.Time, string) {
	m, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return time.Time{}, ""
	}
	date, _ := m.Header.Date()
	return date, strings.TrimSpace(m.Header.Get("Message-Id"))
}
