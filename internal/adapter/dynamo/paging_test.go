package dynamo

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// fileInbox accepts n messages for a fresh pull recipient, filed in its
// inbox, and returns the recipient and the ids in filing order.
func fileInbox(t *testing.T, s *Store, n int) (string, []string) {
	t.Helper()
	rcpt := strings.ToLower(gatewaytest.NewID("bob")) + "@b.example"
	var ids []string
	for range n {
		a := toInbox(newAcceptance("alice@a.example", rcpt))
		_, err := s.Accept(ctx(t), a)
		require.NoError(t, err)
		ids = append(ids, a.Message.ID)
	}
	return rcpt, ids
}

// TestPagesCutShortByDynamoDB: DynamoDB may end a query's page before its
// Limit (at 1 MB); every reader carries on from where the page ended, and
// nothing is skipped.
func TestPagesCutShortByDynamoDB(t *testing.T) {
	e := newEnv(t)
	good := e.store(t)

	t.Run("inbox", func(t *testing.T) {
		// More entries than shards: one shard holds two, and its query
		// is the one cut short.
		rcpt, ids := fileInbox(t, good, DefaultInboxShards+1)
		s := e.faultyStore(t, faults{edit: cutQueries(1, onIndex(awsres.GSI2))})
		page, next, err := s.ListInbox(ctx(t), rcpt, 10, "")
		require.NoError(t, err)
		require.NotEmpty(t, page)
		require.Less(t, len(page), len(ids), "the page ends at the cut shard's last entry")
		require.NotEmpty(t, next, "a cut page has a cursor")
		got := make([]string, 0, len(ids))
		for _, m := range page {
			got = append(got, m.MessageID)
		}
		rest, next, err := s.ListInbox(ctx(t), rcpt, 10, next)
		require.NoError(t, err)
		assert.Empty(t, next)
		for _, m := range rest {
			got = append(got, m.MessageID)
		}
		assert.Equal(t, ids, got, "nothing skipped or repeated")
	})

	t.Run("inbox purge", func(t *testing.T) {
		rcpt, ids := fileInbox(t, good, 3)
		require.NoError(t, good.PutAgent(ctx(t), &gateway.Agent{Address: rcpt, DeliveryMode: gateway.ModePull, CreatedAt: gatewaytest.Now()}))
		s := e.faultyStore(t, faults{edit: cutQueries(1, onIndex(awsres.GSI2))})
		require.NoError(t, s.DeleteAgent(ctx(t), rcpt))
		page, _, err := good.ListInbox(ctx(t), rcpt, 10, "")
		require.NoError(t, err)
		assert.Empty(t, page, "every entry is taken out, not only the first page's")
		for _, id := range ids {
			st, err := good.GetStatuses(ctx(t), id)
			require.NoError(t, err)
			assert.Equal(t, gateway.StateDelivered, st[0].Status, "the status stays")
		}
	})

	t.Run("statuses", func(t *testing.T) {
		a := newAcceptance("alice@a.example", "bob@b.example", "carol@c.example", "dave@d.example")
		_, err := good.Accept(ctx(t), a)
		require.NoError(t, err)
		s := e.faultyStore(t, faults{edit: cutQueries(1, onIndex(""))})
		st, err := s.GetStatuses(ctx(t), a.Message.ID)
		require.NoError(t, err)
		require.Len(t, st, 3)
		assert.Equal(t, a.Message.Recipients, []string{st[0].Address, st[1].Address, st[2].Address})
	})

	t.Run("messages", func(t *testing.T) {
		sender := strings.ToLower(gatewaytest.NewID("alice")) + "@a.example"
		var want []string
		for range 3 {
			a := newAcceptance(sender, "bob@b.example")
			_, err := good.Accept(ctx(t), a)
			require.NoError(t, err)
			want = append([]string{a.Message.ID}, want...)
		}
		s := e.faultyStore(t, faults{edit: cutQueries(2, onIndex(awsres.GSI1))})
		assert.Equal(t, want, listIDs(t, s, gateway.MessageQuery{Sender: sender}))
	})
}

// TestListMessagesBounds: where a cursor, Since and the retention horizon
// leave nothing to list, the answer is an empty last page; Since is exact
// although index keys hold milliseconds.
func TestListMessagesBounds(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	a := newAcceptance("alice@a.example", "bob@b.example")
	a.Message.AcceptedAt = a.Message.AcceptedAt.Add(time.Hour) // no other message of this env shares its millisecond
	_, err := s.Accept(ctx(t), a)
	require.NoError(t, err)
	at := a.Message.AcceptedAt

	for _, tc := range []struct {
		name string
		q    gateway.MessageQuery
		want []string
	}{
		{"since its millisecond", gateway.MessageQuery{Since: at}, []string{a.Message.ID}},
		{"since within its millisecond", gateway.MessageQuery{Since: at.Add(500 * time.Microsecond)}, nil},
		{"sender, since within its millisecond", gateway.MessageQuery{Sender: "alice@a.example", Since: at.Add(500 * time.Microsecond)}, nil},
		{"cursor before since", gateway.MessageQuery{Since: at, Cursor: encodeCursor(cursorMessages, timeSK(at.Add(-time.Hour), "x"))}, nil},
		{"cursor beyond the retention horizon", gateway.MessageQuery{Cursor: encodeCursor(cursorMessages, timeSK(at.Add(-2*DefaultRetention), "x"))}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, next, err := s.ListMessages(ctx(t), tc.q)
			require.NoError(t, err)
			assert.Empty(t, next)
			var ids []string
			for _, m := range page {
				ids = append(ids, m.MessageID)
			}
			assert.Equal(t, tc.want, ids)
		})
	}
}

// TestListOverManyEmptyDays: a walk over more empty day buckets than one
// call may query returns a short page, even an empty one, with a cursor
// that moves on, and the walk resumed from it reaches the old message.
func TestListOverManyEmptyDays(t *testing.T) {
	const retention = 100 * 24 * time.Hour
	for _, recent := range []bool{false, true} {
		t.Run(map[bool]string{false: "only an old message", true: "a recent one too"}[recent], func(t *testing.T) {
			e := newEnv(t)
			s := e.store(t, func(c *Config) { c.Retention, c.Blobs = retention, nil })
			old := gatewaytest.NewAcceptance(gatewaytest.NewID("old"), "alice@a.example", []string{"bob@b.example"}, gatewaytest.Now().Add(-90*24*time.Hour))
			_, err := s.Accept(ctx(t), old)
			require.NoError(t, err)
			var want []string
			if recent {
				a := newAcceptance("alice@a.example", "bob@b.example")
				_, err := s.Accept(ctx(t), a)
				require.NoError(t, err)
				want = append(want, a.Message.ID)
			}

			page, next, err := s.ListMessages(ctx(t), gateway.MessageQuery{})
			require.NoError(t, err)
			var ids []string
			for _, m := range page {
				ids = append(ids, m.MessageID)
			}
			assert.Equal(t, want, ids, "%d buckets are more than one call queries", maxListQueries)
			require.NotEmpty(t, next)
			assert.Equal(t, []string{old.Message.ID}, listIDs(t, s, gateway.MessageQuery{Cursor: next}))
		})
	}
}
