package dynamo

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// TestRecipientItemsAreTheirListingEntries: the recipient's item of a
// message to one recipient is keyed by its TO# listing (shard of the
// message id) and needs no gsi1 entry; an address the message was not sent
// to keeps its item under the message, and so do the recipients of a
// message to several.
func TestRecipientItemsAreTheirListingEntries(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, func(c *Config) { c.ListingShards = 4 })
	rcpt := strings.ToLower(gatewaytest.NewID("bob")) + "@b.example"
	a := toInbox(newAcceptance("alice@a.example", rcpt))
	_, err := s.Accept(ctx(t), a)
	require.NoError(t, err)

	it := e.rawItem(t, key(sharded("TO#"+rcpt, shardOf(a.Message.ID, 4)), timeSK(a.Message.AcceptedAt, a.Message.ID)))
	require.NotEmpty(t, it, "the item is the TO# entry")
	assert.NotContains(t, it, aG1P, "no gsi1 entry")
	assert.Contains(t, it, aG2P, "filed in the inbox")
	assert.Empty(t, e.rawItem(t, recipientKey(a.Message.ID, rcpt)), "nothing under the message")
	assert.Equal(t, []string{a.Message.ID}, listIDs(t, s, gateway.MessageQuery{Recipient: rcpt}))

	now := gatewaytest.Now()
	other := e.store(t, func(c *Config) { c.ListingShards = 8 }) // N grew: the message keeps its shards
	require.NoError(t, other.UpdateStatuses(ctx(t), a.Message.ID, []gateway.RecipientStatus{
		{Address: strings.ToUpper(rcpt), Status: gateway.StateDelivered, Attempts: 2, UpdatedAt: now, Via: "inbox"},
		{Address: "zed@z.example", Status: gateway.StateFailed, Attempts: 1, UpdatedAt: now},
	}))
	assert.NotEmpty(t, e.rawItem(t, recipientKey(a.Message.ID, "zed@z.example")), "not a recipient: under the message")
	st, err := other.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.Equal(t, 2, st[0].Attempts, "the TO# item was updated")
	assert.Equal(t, "zed@z.example", st[1].Address)
	assert.Equal(t, []string{a.Message.ID}, listIDs(t, other, gateway.MessageQuery{Recipient: rcpt}))

	// Code from before, running beside this during a deploy, would write
	// its update under MSG#<id>: the TO# item stays the status.
	stray := recipientKey(a.Message.ID, rcpt)
	stray[aAddr], stray[aN], stray[aStatus] = str(rcpt), num(0), statusAttr(gateway.RecipientStatus{Status: gateway.StateFailed, UpdatedAt: now})
	e.putRaw(t, stray)
	st, err = e.store(t).GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.Equal(t, gateway.StateDelivered, st[0].Status)

	require.NoError(t, other.AckInbox(ctx(t), rcpt, a.Message.ID))
	assert.Empty(t, inboxIDs(t, other, rcpt, 10))
	assert.ErrorIs(t, other.AckInbox(ctx(t), rcpt, gatewaytest.NewID("none")), gateway.ErrNotFound)

	two := newAcceptance("alice@a.example", rcpt, "carol@c.example")
	_, err = s.Accept(ctx(t), two)
	require.NoError(t, err)
	it = e.rawItem(t, recipientKey(two.Message.ID, rcpt))
	require.NotEmpty(t, it, "under the message")
	assert.Equal(t, sharded("TO#"+rcpt, shardOf(two.Message.ID, 4)), getStr(it, aG1P), "listed by a gsi1 entry")
	assert.Equal(t, []string{two.Message.ID, a.Message.ID}, listIDs(t, s, gateway.MessageQuery{Recipient: rcpt}))
	e.receiveAll(t, 300*time.Millisecond)
}

// asOldRecipients rewrites message id as the layout before recipient items
// were their own TO# entries stored it: items under MSG#<id> with gsi1 TO#
// entries, and no shard count on the message.
func asOldRecipients(t *testing.T, e *env, id string) {
	t.Helper()
	ref := e.ref(t, id)
	require.NotZero(t, ref.shards, "a message to one recipient")
	e.mutate(t, messageKey(id), func(it item) { delete(it, aShards) })
	k := ref.recipientKey(ref.to[0])
	it := e.rawItem(t, k)
	require.NotEmpty(t, it)
	_, err := e.client.DeleteItem(ctx(t), &dynamodb.DeleteItemInput{TableName: aws.String(e.names.Table), Key: k})
	require.NoError(t, err)
	for name, v := range recipientKey(id, ref.to[0]) {
		it[name] = v
	}
	it[aG1P] = str(getStr(k, aPK))
	it[aG1S] = str(getStr(k, aSK))
	e.putRaw(t, it)
}

// TestRecipientItemsOfTheOldLayout: a message to one recipient stored
// before its item was its TO# entry (the item under MSG#<id>, listed by a
// gsi1 entry) is listed, read, updated and acknowledged together with
// those stored since, and with messages to several recipients.
func TestRecipientItemsOfTheOldLayout(t *testing.T) {
	e := newEnv(t)
	sender := strings.ToLower(gatewaytest.NewID("alice")) + "@a.example"
	rcpt := strings.ToLower(gatewaytest.NewID("bob")) + "@b.example"
	at := gatewaytest.Now()
	accept := func(i int, to ...string) *gateway.Acceptance {
		a := toInbox(gatewaytest.NewAcceptance(gatewaytest.NewID("m"), sender, to, at.Add(time.Duration(i)*time.Millisecond)))
		_, err := e.store(t).Accept(ctx(t), a)
		require.NoError(t, err)
		return a
	}
	old := accept(0, rcpt)
	asOldRecipients(t, e, old.Message.ID)
	require.NotEmpty(t, e.rawItem(t, recipientKey(old.Message.ID, rcpt)))
	several := accept(1, rcpt, "carol@c.example")
	fresh := accept(2, rcpt)

	s := e.store(t)
	newest := []string{fresh.Message.ID, several.Message.ID, old.Message.ID}
	for _, limit := range []int{1, 2, 10} {
		assert.Equal(t, newest, listIDs(t, s, gateway.MessageQuery{Recipient: rcpt, Limit: limit}))
		assert.Equal(t, newest, listIDs(t, s, gateway.MessageQuery{Party: rcpt, Limit: limit}))
		assert.Equal(t, []string{old.Message.ID, several.Message.ID, fresh.Message.ID}, inboxIDs(t, s, rcpt, limit))
	}
	now := gatewaytest.Now()
	require.NoError(t, s.UpdateStatuses(ctx(t), old.Message.ID, []gateway.RecipientStatus{{Address: rcpt, Status: gateway.StateDelivered, Attempts: 3, UpdatedAt: now, DeliveredAt: &now, Via: "inbox"}}))
	st, err := s.GetStatuses(ctx(t), old.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, 1)
	assert.Equal(t, 3, st[0].Attempts)
	n, _ := getNum(e.rawItem(t, recipientKey(old.Message.ID, rcpt))[aStatus].(*types.AttributeValueMemberM).Value, stAttempts)
	assert.Equal(t, int64(3), n, "updated in its place")
	require.NoError(t, s.AckInbox(ctx(t), rcpt, old.Message.ID))
	require.NoError(t, s.AckInbox(ctx(t), rcpt, several.Message.ID))
	assert.Equal(t, []string{fresh.Message.ID}, inboxIDs(t, s, rcpt, 10))
	require.NoError(t, s.purgeInbox(ctx(t), rcpt))
	assert.Empty(t, inboxIDs(t, s, rcpt, 10))
	e.receiveAll(t, 300*time.Millisecond)
}
