package pebblestore

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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// This file holds the acceptance test for the store's durability promise:
// an answer given is a write kept, whatever the commit path does inside,
// and for the queue's part of it: a task answered as queued stays queued
// until it is settled, and a task answered as settled never comes back.
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
	killAfterSettled   = 100
	killJitter         = 2000
	// killRounds kill/reopen cycles run on one directory, so that a store
	// recovered after a kill is itself killed and recovered.
	killRounds = 2
	// killWriters goroutines write at once, so that commits are grouped.
	killWriters = 16
	// killDeliverEvery: every so many accepts, the writer also settles the
	// message as delivered.
	killDeliverEvery = 5
	// killReceivers goroutines receive tasks, killReceiveLimit at a time,
	// and settle each as delivered: fewer than the writers, so that a
	// backlog of queued tasks is there when the kill comes.
	killReceivers    = 4
	killReceiveLimit = 16
	// killAckEvery: after each reopen the parent acks every so many of the
	// tasks it drained and leaves the others queued, so that the next
	// round sees both tasks settled outside any child and tasks left over
	// from a kill.
	killAckEvery = 2
	// killChildLimit bounds a child that nobody kills (a parent that died
	// without closing the pipe), so that it never runs forever.
	killChildLimit = 5 * time.Minute
	// killStartLimit is how long the parent waits for the child to reach
	// the thresholds; killDrainLimit how long for the pipe to end after the
	// kill. Both are far beyond what even a busy machine needs: they only
	// keep a broken child from hanging the test.
	killStartLimit = 2 * time.Minute
	killDrainLimit = time.Minute
)

const (
	killSender    = "alice@a.example"
	killRecipient = "bob@b.example"
)

// killAnswers are the answers a child gave before it died, in the order it
// printed them.
type killAnswers struct {
	accepted  []string // messages whose Accept was answered
	delivered []string // messages the accepting goroutine settled
	// settled are the tasks a receiver settled; settling the tasks whose
	// settle (by either path) had begun, answered or not.
	settled  []killTask
	settling []killTask
}

type killTask struct{ task, message string }

func (a *killAnswers) add(b killAnswers) {
	a.accepted = append(a.accepted, b.accepted...)
	a.delivered = append(a.delivered, b.delivered...)
	a.settled = append(a.settled, b.settled...)
	a.settling = append(a.settling, b.settling...)
}

// killTaskID is the task of a message written by killChild.
func killTaskID(message string) string { return gateway.TaskID(message, killRecipient) }

// killQueue is what the parent knows of the queue after a reopen: the
// tasks it drained and left queued, and the tasks that must never be
// received again (settled, acked by the parent, or missing from a drain).
type killQueue struct {
	left, gone map[string]bool
}

// TestAnsweredWritesSurviveKill runs a child process that accepts messages
// (and settles some as delivered) from many goroutines while others receive
// and settle their tasks, printing each id only after the store answered,
// kills it with SIGKILL in the middle of the load, reopens the store and
// checks that every answered write is there, then drains the queue and
// checks that it holds every answered task not settled and none settled.
// Two rounds on the same directory: the second child starts on a store that
// recovered from the first kill, with tasks left over from it. It runs
// under -short too: it is the store's durability guarantee, and takes
// about a second.
func TestAnsweredWritesSurviveKill(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		killChild(t, dir)
		return
	}
	dir := t.TempDir()
	var all killAnswers
	q := killQueue{left: map[string]bool{}, gone: map[string]bool{}}
	for round := 1; round <= killRounds; round++ {
		start := time.Now()
		got := runAndKill(t, dir, round)
		all.add(got)
		t.Logf("round %d: child answered %d accepts, %d deliveries and %d receiver settles before SIGKILL (%v)",
			round, len(got.accepted), len(got.delivered), len(got.settled), time.Since(start).Round(time.Millisecond))

		// The ids of earlier rounds are checked again: recovering from
		// this kill must not lose what the previous recovery kept.
		start = time.Now()
		checkAnswersKept(t, dir, round, all, got, &q)
		t.Logf("round %d: reopened and checked %d accepts, %d deliveries and %d receiver settles (%v)",
			round, len(all.accepted), len(all.delivered), len(all.settled), time.Since(start).Round(time.Millisecond))
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
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "accepted":
			got.accepted = append(got.accepted, f[1])
		case len(f) == 2 && f[0] == "delivered":
			got.delivered = append(got.delivered, f[1])
		case len(f) == 3 && f[0] == "settling":
			got.settling = append(got.settling, killTask{task: f[1], message: f[2]})
		case len(f) == 3 && f[0] == "settled":
			got.settled = append(got.settled, killTask{task: f[1], message: f[2]})
		default: // the testing package's own output, or a read error
			other = append(other, line)
		}
	}

	// Load until the thresholds, then SIGKILL: no Close, no flush.
	threshold := killAfterAccepted + mrand.IntN(killJitter+1)
	deadline := time.After(killStartLimit)
	stopped := ""
load:
	for len(got.accepted) < threshold || len(got.delivered) < killAfterDelivered || len(got.settled) < killAfterSettled {
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
		t.Fatalf("round %d: %s after %d accepts, %d deliveries and %d receiver settles, before the %d, %d and %d to kill at; other output %q; stderr:\n%s",
			round, stopped, len(got.accepted), len(got.delivered), len(got.settled),
			threshold, killAfterDelivered, killAfterSettled, other, stderr.String())
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
// answered (by either path) is recorded as delivered; then it checks the
// queue (checkQueueKept). want holds the answers of every round so far,
// this those of the round just killed.
func checkAnswersKept(t *testing.T, dir string, round int, want, this killAnswers, q *killQueue) {
	t.Helper()
	// The drain leases every task it receives: the lease must outlast it,
	// or the drain would receive its own tasks again.
	db, err := Open(Options{Dir: dir, LeaseTimeout: time.Minute})
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
	delivered := slices.Clone(want.delivered)
	for _, s := range want.settled {
		delivered = append(delivered, s.message)
	}
	for _, id := range delivered {
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
		round, len(undelivered), len(delivered), firstFew(undelivered))

	checkQueueKept(t, db, round, want, this, q)
}

// checkQueueKept drains the queue of the reopened store and checks it
// against what the children answered: a task settled (by either path) or
// known gone before this round is never received again; a task answered
// queued (an accept, or a task left queued by the previous drain) is
// received unless a settle of it had begun when the child died; and a
// task's presence agrees with its message's status, since a settle changes
// both in one commit. Then it acks every killAckEvery-th task drained and
// records in q what the next round must find.
func checkQueueKept(t *testing.T, db *DB, round int, all, this killAnswers, q *killQueue) {
	t.Helper()
	ctx := t.Context()

	// After a reopen no lease survives: every task is due at once.
	drained := map[string]gateway.Task{}
	var order []gateway.Task
	var twice []string
	for {
		tasks, err := db.Receive(ctx, 256, 10*time.Millisecond)
		require.NoError(t, err, "round %d: receive", round)
		if len(tasks) == 0 {
			break
		}
		for _, task := range tasks {
			if _, ok := drained[task.ID]; ok {
				twice = append(twice, task.ID)
				continue
			}
			drained[task.ID] = task
			order = append(order, task)
		}
	}
	assert.Zero(t, len(twice), "round %d: %d tasks received twice in one drain while leased, first %v",
		round, len(twice), firstFew(twice))

	settled := map[string]bool{}
	for _, id := range all.delivered {
		settled[killTaskID(id)] = true
	}
	for _, s := range all.settled {
		settled[s.task] = true
	}
	inDoubt := map[string]bool{} // settles begun in this round, answered or not
	for _, s := range this.settling {
		inDoubt[s.task] = true
	}

	// (a) A settled task stays gone, and so does a task gone before this
	// round: neither the drain nor this round's receivers may see it.
	var again, revived []string
	for _, task := range order {
		if settled[task.ID] || q.gone[task.ID] {
			again = append(again, task.ID)
		}
	}
	for _, s := range this.settling {
		if q.gone[s.task] {
			revived = append(revived, s.task)
		}
	}
	assert.Zero(t, len(again), "round %d: %d of %d tasks drained had been settled or were gone before, first %v",
		round, len(again), len(drained), firstFew(again))
	assert.Zero(t, len(revived), "round %d: the child received %d tasks that were gone before it started, first %v",
		round, len(revived), firstFew(revived))

	// (b) Every task answered queued and not settled since is still there.
	owed := map[string]bool{}
	for _, id := range all.accepted {
		owed[killTaskID(id)] = true
	}
	for id := range q.left {
		owed[id] = true
	}
	var lost []string
	expected := 0
	for id := range owed {
		if settled[id] || inDoubt[id] || q.gone[id] {
			continue
		}
		expected++
		if _, ok := drained[id]; !ok {
			lost = append(lost, id)
		}
	}
	slices.Sort(lost)
	assert.Zero(t, len(lost), "round %d: %d of %d answered tasks neither settled nor being settled were lost after SIGKILL, first %v",
		round, len(lost), expected, firstFew(lost))

	// (c) A queued task's message reads queued; a task whose settle was in
	// flight at the kill is either still queued or its message delivered.
	var torn []string
	for _, task := range order {
		st, err := db.GetStatuses(ctx, task.MessageID)
		switch {
		case err != nil:
			torn = append(torn, fmt.Sprintf("%s queued, message: %v", task.ID, err))
		case len(st) != 1 || st[0].Status != gateway.StateQueued:
			torn = append(torn, fmt.Sprintf("%s queued, message %v", task.ID, killStates(st)))
		}
	}
	for _, s := range this.settling {
		if _, ok := drained[s.task]; ok {
			continue
		}
		st, err := db.GetStatuses(ctx, s.message)
		switch {
		case err != nil:
			torn = append(torn, fmt.Sprintf("%s gone, message: %v", s.task, err))
		case len(st) != 1 || st[0].Status != gateway.StateDelivered:
			torn = append(torn, fmt.Sprintf("%s gone, message %v", s.task, killStates(st)))
		}
	}
	assert.Zero(t, len(torn), "round %d: %d tasks disagree with their message's status, first %v",
		round, len(torn), firstFew(torn))

	// Ack some of what was drained, concurrently so that the acks share
	// commits; the others stay queued for the next round.
	var acks []gateway.Task
	for i, task := range order {
		if i%killAckEvery == 0 {
			acks = append(acks, task)
		}
	}
	errs := make([]error, len(acks))
	var wg sync.WaitGroup
	for w := range killWriters {
		wg.Go(func() {
			for i := w; i < len(acks); i += killWriters {
				errs[i] = db.Ack(ctx, acks[i])
			}
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...), "round %d: ack drained tasks", round)

	// For the log: settles begun and not answered (and how many of those
	// the kill lost: the task is still queued), and tasks left by the previous round that this
	// round's child settled.
	doubt, undone, leftSettled := 0, 0, 0
	for id := range inDoubt {
		if !settled[id] {
			doubt++
			if _, ok := drained[id]; ok {
				undone++
			}
		}
	}
	for id := range q.left {
		if settled[id] {
			leftSettled++
		}
	}
	prevLeft := len(q.left)

	// What the next round must find: every task known so far is gone
	// unless it was drained and not acked.
	for id := range owed {
		q.gone[id] = true
	}
	for _, s := range all.settling {
		q.gone[s.task] = true
	}
	clear(q.left)
	for _, task := range order {
		q.left[task.ID] = true
	}
	for _, task := range acks {
		delete(q.left, task.ID)
		q.gone[task.ID] = true
	}
	for id := range q.left {
		delete(q.gone, id)
	}
	t.Logf("round %d: drained %d tasks, %d of %d owed missing; %d unanswered settles (%d not kept); child settled %d of %d tasks left by the previous drain; test acked %d, left %d queued",
		round, len(drained), len(lost), expected, doubt, undone, leftSettled, prevLeft, len(acks), len(q.left))
}

func firstFew(s []string) []string { return s[:min(len(s), 5)] }

// killStates is a message's statuses, short enough for a failure message.
func killStates(st []gateway.RecipientStatus) []string {
	var out []string
	for _, s := range st {
		out = append(out, s.Address+":"+string(s.Status))
	}
	return out
}

// killChild is the child's side: killWriters goroutines accept messages and
// settle every killDeliverEvery-th as delivered, killReceivers goroutines
// receive tasks and settle each as delivered, and each answer is printed on
// stdout once the store has given it, until the process is killed (or
// killChildLimit passes). Before each settle begins, a "settling" line
// says that the task may be gone whether or not the answer is printed.
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
	say := func(fields ...string) {
		outMu.Lock()
		defer outMu.Unlock()
		if _, err := fmt.Fprintln(os.Stdout, strings.Join(fields, " ")); err != nil {
			// The parent is gone; nobody is listening.
			os.Exit(3)
		}
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}

	deliver := func(message string, task gateway.Task) error {
		at := time.Now().UTC()
		delivered := gateway.RecipientStatus{
			Address: killRecipient, Status: gateway.StateDelivered, Attempts: 1,
			UpdatedAt: at, DeliveredAt: &at, Via: "inbox",
		}
		say("settling", task.ID, message)
		return db.UpdateAndAck(ctx, message, []gateway.RecipientStatus{delivered}, task)
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
				if err := deliver(id, a.Tasks[0]); err != nil {
					if ctx.Err() != nil {
						return
					}
					fail(err)
				}
				say("delivered", id)
			}
		})
	}
	// The receivers see tasks of this child's accepts (some settled by
	// their writer already, which a settle must tolerate) and, first, the
	// tasks a previous round left queued.
	for range killReceivers {
		wg.Go(func() {
			for ctx.Err() == nil {
				tasks, err := db.Receive(ctx, killReceiveLimit, 50*time.Millisecond)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					fail(err)
				}
				for _, task := range tasks {
					if err := deliver(task.MessageID, task); err != nil {
						if ctx.Err() != nil {
							return
						}
						fail(err)
					}
					say("settled", task.ID, task.MessageID)
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, db.Close())
}
