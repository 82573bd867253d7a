package dynamo

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// The crash this file is about: Accept claimed the key (the record names
// its message) but never stored the message. The client's retry must end
// up with exactly one accepted message, and the dead Accept must never
// store its own afterwards.

func TestCrashBetweenClaimAndMessage(t *testing.T) {
	e := newEnv(t)
	crashing := e.store(t)
	crashing.afterClaim = func() error { return errors.New("simulated crash") }
	a := newAcceptance("alice@a.example", "bob@b.example", "carol@c.example")
	_, err := crashing.Accept(ctx(t), a)
	require.ErrorContains(t, err, "simulated crash")
	rec := e.rawItem(t, idemKey(a.Idempotency.Sender, a.Idempotency.Key))
	require.Equal(t, a.Message.ID, getStr(rec, aMsgID), "the key is claimed")
	assert.Empty(t, e.rawItem(t, messageKey(a.Message.ID)), "the message is not stored")

	s := e.store(t)
	retry := retryOf(a)

	// Within the grace period the first Accept might still be writing.
	short, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	_, err = s.Accept(short, retry)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// Past it, the retry stores its own message: the first was never
	// accepted, so the retry's acceptance is the only one.
	e.clock.Advance(DefaultEnqueueGrace + time.Second)
	got, err := s.Accept(ctx(t), retry)
	require.NoError(t, err)
	assert.Nil(t, got)
	m, err := s.GetMessage(ctx(t), retry.Message.ID)
	require.NoError(t, err)
	assert.Equal(t, retry.Message.ID, m.ID)
	st, err := s.GetStatuses(ctx(t), retry.Message.ID)
	require.NoError(t, err)
	assert.Len(t, st, 2)
	assertSameTasks(t, retry.Tasks, e.receiveAtLeast(t, len(retry.Tasks), 20*time.Second))

	// The first message's id is void: absent for every reader, and kept
	// no longer than a message would be.
	_, err = s.GetMessage(ctx(t), a.Message.ID)
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	_, err = s.GetStatuses(ctx(t), a.Message.ID)
	assert.ErrorIs(t, err, gateway.ErrNotFound)
	void := e.rawItem(t, messageKey(a.Message.ID))
	require.True(t, isVoid(void))
	_, ok := getNum(void, awsres.AttrTTL)
	assert.True(t, ok, "a void expires")
	assert.Equal(t, []string{retry.Message.ID}, listIDs(t, s, gateway.MessageQuery{Sender: "alice@a.example"}))

	// Later retries are duplicates of the retry's message.
	dup, err := s.Accept(ctx(t), retryOf(a))
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	assert.Equal(t, retry.Message.ID, dup.MessageID)
	assert.Empty(t, e.receiveAll(t, 300*time.Millisecond))
}

// A first Accept that was only slow, not dead, loses to the retry that took
// its key over: its late write fails and it does not answer "accepted".
func TestLateOwnerLosesToTheTakeOver(t *testing.T) {
	for _, sameID := range []bool{false, true} {
		t.Run(map[bool]string{false: "NewID", true: "ClientID"}[sameID], func(t *testing.T) {
			e := newEnv(t)
			slow := e.store(t)
			a := newAcceptance("alice@a.example", "bob@b.example")
			release, first := pausedAccept(t, slow, &slow.afterClaim, a)

			retry := retryOf(a)
			if sameID {
				// The client set message_id itself: its retry has it too.
				retry = gatewaytest.NewAcceptance(a.Message.ID, a.Message.Sender, a.Message.Recipients, gatewaytest.Now())
				retry.Idempotency.Key = a.Idempotency.Key
			}
			e.clock.Advance(DefaultEnqueueGrace + time.Second)
			s := e.store(t)
			_, err := s.Accept(ctx(t), retry)
			require.NoError(t, err, "the retry takes the key over")

			close(release)
			err = <-first
			require.ErrorContains(t, err, "took", "the late first Accept must not report success")
			assert.NotErrorIs(t, err, gateway.ErrDuplicate)

			m, err := s.GetMessage(ctx(t), retry.Message.ID)
			require.NoError(t, err)
			assert.Equal(t, string(retry.Message.Raw), string(m.Raw), "the stored message is the retry's")
			if !sameID {
				_, err = s.GetMessage(ctx(t), a.Message.ID)
				assert.ErrorIs(t, err, gateway.ErrNotFound)
			}
			assertSameTasks(t, retry.Tasks, e.receiveAtLeast(t, len(retry.Tasks), 20*time.Second))
			rec := e.rawItem(t, idemKey(a.Idempotency.Sender, a.Idempotency.Key))
			assert.Equal(t, retry.Message.ID, getStr(rec, aMsgID))

			dup, err := s.Accept(ctx(t), retryOf(a))
			require.ErrorIs(t, err, gateway.ErrDuplicate)
			assert.Equal(t, retry.Message.ID, dup.MessageID)
		})
	}
}

// A crash after the message item but before its recipient items: statuses
// read from the message item at once, and the retry writes the items,
// inbox entry included.
func TestCrashBeforeRecipientItems(t *testing.T) {
	e := newEnv(t)
	crashing := e.store(t)
	crashing.afterCommit = func() error { return errors.New("simulated crash") }
	a := toInbox(newAcceptance("alice@a.example", "bob@b.example"))
	_, err := crashing.Accept(ctx(t), a)
	require.ErrorContains(t, err, "simulated crash")

	s := e.store(t)
	st, err := s.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, 1)
	assert.Equal(t, gateway.StateDelivered, st[0].Status)
	assert.Zero(t, countRecipientItems(t, e, a.Message.ID))

	e.clock.Advance(DefaultEnqueueGrace + time.Second)
	_, err = s.Accept(ctx(t), retryOf(a))
	require.ErrorIs(t, err, gateway.ErrDuplicate)
	assert.Equal(t, 1, countRecipientItems(t, e, a.Message.ID))
	entries, _, err := s.ListInbox(ctx(t), "bob@b.example", 10, "")
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, a.Message.ID, entries[0].MessageID)
	list, _, err := s.ListMessages(ctx(t), gateway.MessageQuery{Recipient: "bob@b.example"})
	require.NoError(t, err)
	require.Len(t, list, 1)
}

// Writes sent again by the SDK after a lost answer find their own earlier
// write, not another acceptance's.
func TestWritesRecogniseTheirOwnRetry(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	a := newAcceptance("alice@a.example", "bob@b.example")
	p, err := s.plan(ctx(t), a, s.now().UTC())
	require.NoError(t, err)
	for range 2 {
		rec, err := s.claimKey(ctx(t), p)
		require.NoError(t, err)
		assert.Nil(t, rec, "the record is this acceptance's")
	}
	for range 2 {
		old, err := s.putMessage(ctx(t), p)
		require.NoError(t, err)
		assert.Nil(t, old, "the message is this acceptance's")
	}
}

// pausedAccept starts s.Accept(a) in the background and returns once it
// has reached hook (s.afterClaim or s.afterCommit), where it waits until
// release is closed; first receives its result.
func pausedAccept(t *testing.T, s *Store, hook *func() error, a *gateway.Acceptance) (release chan struct{}, first chan error) {
	t.Helper()
	entered := make(chan struct{})
	release, first = make(chan struct{}), make(chan error, 1)
	*hook = func() error {
		close(entered)
		<-release
		return nil
	}
	go func() {
		_, err := s.Accept(ctx(t), a)
		first <- err
	}()
	<-entered
	return release, first
}
