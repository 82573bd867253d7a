package e2e

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFailureReportOfALongSubject: the report's subject, "Delivery
// failure: " and the original's, is cut to the subject limit at a
// character boundary, so the report is still a valid message and reaches
// the sender.
func TestFailureReportOfALongSubject(t *testing.T) {
	bothRuntimes(t, testFailureReportOfALongSubject)
}

func testFailureReportOfALongSubject(t *testing.T, onAWS bool) {
	w := newWorldOn(t, onAWS)
	gone := newPushAgent(t, http.StatusGone)
	_, secret := w.a.register("erin", "push", gone.srv.URL)
	gone.secret = secret

	// 18 bytes of prefix + 1 + 2×495: the byte limit falls inside an "é".
	subject := "x" + strings.Repeat("é", 495)
	m := msg(w.aliceAddr, []string{"erin@a.test"}, map[string]any{"x": true})
	m["subject"] = subject
	status, out := w.a.send(w.alice, m)
	require.Equal(t, http.StatusAccepted, status, "%v", out)

	reports := w.a.waitInbox(w.alice, w.aliceAddr, 1, settleWithin)
	require.Len(t, reports, 1)
	got := str(reports[0]["subject"])
	assert.True(t, utf8.ValidString(got), "subject %q", got)
	assert.LessOrEqual(t, len(got), 998)
	assert.Greater(t, len(got), 990)
	assert.True(t, strings.HasPrefix(got, "Delivery failure: x"), "%q", got[:30])
}
