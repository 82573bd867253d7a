package embedded

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/gateway"
	"github.com/agentry/agentry/internal/gateway/gatewaytest"
)

// This file holds the acceptance test for the store's durability promise:
// an answer given is a write kept, whatever the commit path does inside.
// It uses only the store's exported API so that it judges any rewrite of
// that path (such as a write-ahead log) without knowing about it.

// killChildEnv, when set, turns TestAnsweredWritesSurviveKill into the child
// that writes to the store in the named directory until it is killed.
const killChildEnv = "AGENTRY_CRASH_CHILD_DIR"

const (
	// killAfterAccepted and killAfterDelivered are how many answers the
	// parent waits for at least before it kills the child: enough that the
	// kill lands in the middle of a steady load, with group commits in
	// flight. Up to killJitter more accepts, drawn per round, move the kill
	// so that runs hit different moments of whatever the store does
	// periodically (a log checkpoint, a file growth).
	killAfterAccepted  = 2000
	killAfterDelivered = 100
	killJitter         = 2000
	// killRounds kill/reopen cycles run on one directory, so that a store
	// recovered after a kill is itself killed and recovered.
	killRounds = 2
	// killWriters goroutines write at once, so that commits are grouped.
	killWriters = 16
	// killDeliverEvery: every so many accepts, the writer also settles the
	// message as delivered.
	killDeliverEvery = 5
	// killChildLimit bounds a child that nobody kills (a parent that died
	// without closing the pipe), so that it never runs forever.
	killChildLimit = 60 * time.Second
	// killStartLimit is how long the parent waits for the child to reach
	// the thresholds; killDrainLimit how long for the pipe to end after the
	// kill.
	killStartLimit = 30 * time.Second
	killDrainLimit = 10 * time.Second
)

const (
	killSender    = "alice@a.example"
	killRecipient = "bob@b.example"
)

// killAnswers are the answers a child gave before it died, in the order it
// printed them.
type killAnswers struct {
	accepted  []string
	delivered []string
}

// TestAnsweredWritesSurviveKill runs a child process that accepts messages
// (and settles some as delivered) from many goroutines, printing each id
// only after the store answered, kills it with SIGKILL in the middle of the
// load, reopens the store and checks that every answered write is there.
// Two rounds on the same directory: the second child starts on a store that
// recovered from the first kill. It runs under -short too: it is the
// store's durability guarantee, and takes about a second.
func TestAnsweredWritesSurviveKill(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		killChild(t, dir)
		return
	}
	dir := t.TempDir()
	var all killAnswers
	for round := 1; round <= killRounds; round++ {
		start := time.Now()
		got := runAndKill(t, dir, round)
		all.accepted = append(all.accepted, got.accepted...)
		all.delivered = append(all.delivered, got.delivered...)
		t.Logf("round %d: child answered %d accepts and %d deliveries before SIGKILL (%v)",
			round, len(got.accepted), len(got.delivered), time.Since(start).Round(time.Millisecond))

		// The ids of earlier rounds are checked again: recovering from
		// this kill must not lose what the previous recovery kept.
		start = time.Now()
		checkAnswersKept(t, dir, round, all)
		t.Logf("round %d: reopened and checked %d accepts and %d deliveries (%v)",
			round, len(all.accepted), len(all.delivered), time.Since(start).Round(time.Millisecond))
		if t.Failed() {
			return
		}
	}
}

// runAndKill starts a child on dir, collects the answers it prints, kills
// it once it has given enough of them, and returns every answer it printed
// before it died.
func runAndKill(t *testing.T, dir string, round int) killAnswers {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAnsweredWritesSurviveKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	var stderr strings.Builder // read only after Wait, when exec is done writing it
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start(), "round %d: start child", round)
	waited := false
	killAndWait := func() {
		if !waited {
			waited = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(killAndWait) // a failed require must not leave the child running

	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				// A last line without its newline was being printed when the
				// child died: not an answer given. (Writes this short to a
				// pipe are atomic, so this should not happen, but a torn
				// line must not count.)
				if err != io.EOF {
					lines <- "read error: " + err.Error()
				}
				return
			}
			lines <- strings.TrimSuffix(line, "\n")
		}
	}()

	var got killAnswers
	var other []string
	record := func(line string) {
		switch kind, id, _ := strings.Cut(line, " "); kind {
		case "accepted":
			got.accepted = append(got.accepted, id)
		case "delivered":
			got.delivered = append(got.delivered, id)
		default: // the testing package's own output, or a read error
			other = append(other, line)
		}
	}

	// Load until the thresholds, then SIGKILL: no Close, no flush.
	threshold := killAfterAccepted + mrand.IntN(killJitter+1)
	deadline := time.After(killStartLimit)
	stopped := ""
load:
	for len(got.accepted) < threshold || len(got.delivered) < killAfterDelivered {
		select {
		case line, ok := <-lines:
			if !ok {
				stopped = "the child ended"
				break load
			}
			record(line)
		case <-deadline:
			stopped = fmt.Sprintf("%v passed", killStartLimit)
			break load
		}
	}
	if stopped != "" {
		killAndWait()
		t.Fatalf("round %d: %s after %d accepts and %d deliveries, before the %d and %d to kill at; other output %q; stderr:\n%s",
			round, stopped, len(got.accepted), len(got.delivered), threshold, killAfterDelivered, other, stderr.String())
	}
	require.NoError(t, cmd.Process.Kill(), "round %d: kill child", round)

	// Every line the child printed before it died is in the pipe: read to
	// its end.
	drain := time.After(killDrainLimit)
	for done := false; !done; {
		select {
		case line, ok := <-lines:
			if !ok {
				done = true
				break
			}
			record(line)
		case <-drain:
			killAndWait()
			t.Fatalf("round %d: child's output did not end within %v of SIGKILL", round, killDrainLimit)
		}
	}
	waited = true
	err = cmd.Wait()
	// The child must have died of the kill, not of its own failure first.
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "round %d: child was killed; stderr:\n%s", round, stderr.String())
	assert.False(t, exit.Exited(), "round %d: child exited by itself (%v) instead of being killed; stderr:\n%s", round, err, stderr.String())
	assert.Empty(t, other, "round %d: unexpected child output", round)
	return got
}

// checkAnswersKept opens the store in dir and checks that every accepted
// message is there with its recipient's status, and that every delivery
// answered is recorded as delivered.
func checkAnswersKept(t *testing.T, dir string, round int, want killAnswers) {
	t.Helper()
	db, err := Open(Options{Dir: dir})
	require.NoError(t, err, "round %d: reopen after SIGKILL", round)
	defer func() { require.NoError(t, db.Close(), "round %d: close", round) }()
	ctx := t.Context()

	var lost, broken []string // lost: not found; broken: found but wrong or unreadable
	for _, id := range want.accepted {
		m, err := db.GetMessage(ctx, id)
		if errors.Is(err, gateway.ErrNotFound) {
			lost = append(lost, id)
			continue
		}
		if err != nil {
			broken = append(broken, fmt.Sprintf("%s: get message: %v", id, err))
			continue
		}
		if m.ID != id || m.Sender != killSender {
			broken = append(broken, fmt.Sprintf("%s: got message %q from %q", id, m.ID, m.Sender))
			continue
		}
		// The status may be queued or delivered (a settle answered after
		// the last printed line may or may not be kept), but it is there.
		st, err := db.GetStatuses(ctx, id)
		if err != nil {
			broken = append(broken, fmt.Sprintf("%s: get statuses: %v", id, err))
		} else if len(st) != 1 || st[0].Address != killRecipient {
			broken = append(broken, fmt.Sprintf("%s: statuses %+v", id, st))
		}
	}
	assert.Zero(t, len(lost), "round %d: %d of %d answered accepts lost after SIGKILL, first %v",
		round, len(lost), len(want.accepted), firstFew(lost))
	assert.Zero(t, len(broken), "round %d: %d of %d answered accepts read back wrong, first %v",
		round, len(broken), len(want.accepted), firstFew(broken))

	var undelivered []string
	for _, id := range want.delivered {
		st, err := db.GetStatuses(ctx, id)
		switch {
		case err != nil:
			undelivered = append(undelivered, fmt.Sprintf("%s: %v", id, err))
		case len(st) != 1:
			undelivered = append(undelivered, fmt.Sprintf("%s: %d statuses", id, len(st)))
		case st[0].Status != gateway.StateDelivered:
			undelivered = append(undelivered, fmt.Sprintf("%s: %s", id, st[0].Status))
		}
	}
	assert.Zero(t, len(undelivered), "round %d: %d of %d answered deliveries lost after SIGKILL, first %v",
		round, len(undelivered), len(want.delivered), firstFew(undelivered))
}

func firstFew(s []string) []string { return s[:min(len(s), 5)] }

// killChild is the child's side: killWriters goroutines accept messages,
// settle every killDeliverEvery-th as delivered, and print each answer on
// stdout once the store has given it, until the process is killed (or
// killChildLimit passes).
func killChild(t *testing.T, dir string) {
	db, err := Open(Options{Dir: dir})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), killChildLimit)
	defer cancel()
	// Ids are unique across children on the same store: each child has its
	// own random prefix.
	run := rand.Text()[:12]

	// One write call per line to an unbuffered os.Stdout, under a lock: a
	// line in the pipe means the answer was given before it.
	var outMu sync.Mutex
	say := func(kind, id string) {
		outMu.Lock()
		defer outMu.Unlock()
		if _, err := fmt.Fprintf(os.Stdout, "%s %s\n", kind, id); err != nil {
			// The parent is gone; nobody is listening.
			os.Exit(3)
		}
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}

	var wg sync.WaitGroup
	for g := range killWriters {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				id := fmt.Sprintf("kill-%s-%02d-%07d", run, g, n)
				now := time.Now().UTC()
				// One recipient: one queued status and one task, so that the
				// queue is written in the same commit as the message.
				a := gatewaytest.NewAcceptance(id, killSender, []string{killRecipient}, now)
				if _, err := db.Accept(ctx, a); err != nil {
					if ctx.Err() != nil {
						return
					}
					fail(err)
				}
				say("accepted", id)
				if n%killDeliverEvery != killDeliverEvery-1 {
					continue
				}
				at := time.Now().UTC()
				delivered := gateway.RecipientStatus{
					Address: killRecipient, Status: gateway.StateDelivered, Attempts: 1,
					UpdatedAt: at, DeliveredAt: &at, Via: "inbox",
				}
				if err := db.UpdateAndAck(ctx, id, []gateway.RecipientStatus{delivered}, a.Tasks[0]); err != nil {
					if ctx.Err() != nil {
						return
					}
					fail(err)
				}
				say("delivered", id)
			}
		})
	}
	wg.Wait()
	require.NoError(t, db.Close())
}
