package dynamo

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

func TestUpdateStatusesRefusesAStatusWithoutAddress(t *testing.T) {
	e := newEnv(t)
	s := e.store(t)
	a := newAcceptance("alice@a.example", "bob@b.example")
	_, err := s.Accept(ctx(t), a)
	require.NoError(t, err)
	err = s.UpdateStatuses(ctx(t), a.Message.ID, []gateway.RecipientStatus{{Status: gateway.StateDelivered, UpdatedAt: gatewaytest.Now()}})
	require.ErrorContains(t, err, "status without an address")
	st, err := s.GetStatuses(ctx(t), a.Message.ID)
	require.NoError(t, err)
	require.Len(t, st, 1, "no status was added")
	assert.Equal(t, gateway.StateQueued, st[0].Status)
}

// TestStatusItemThatKeepsVanishing: a recipient item that is missing when
// updated and present when created, over and over, ends the update with
// an error after a few rounds instead of looping.
func TestStatusItemThatKeepsVanishing(t *testing.T) {
	e := newEnv(t)
	a := newAcceptance("alice@a.example", "bob@b.example")
	_, err := e.store(t).Accept(ctx(t), a)
	require.NoError(t, err)
	updates := &awstest.Counted[*dynamodb.UpdateItemInput]{Rule: awstest.FailCalls(1, updateOf(pfxTo), conditionFailed())}
	s := e.faultyStore(t, faults{fail: awstest.AnyOf(updates.Fail, awstest.FailCalls(1, putOf(pfxTo, ""), conditionFailed()))})
	err = s.UpdateStatuses(ctx(t), a.Message.ID, []gateway.RecipientStatus{{Address: "bob@b.example", Status: gateway.StateDelivered, UpdatedAt: gatewaytest.Now()}})
	require.ErrorContains(t, err, "kept appearing and disappearing")
	assert.Equal(t, int64(3), updates.Calls())
}

// TestStatusesOfRecipientsAddedTogether: recipients added in the same
// millisecond share their position; they come back in address order, the
// same on every read.
func TestStatusesOfRecipientsAddedTogether(t *testing.T) {
	e := newEnv(t)
	a := newAcceptance("alice@a.example", "bob@b.example")
	_, err := e.store(t).Accept(ctx(t), a)
	require.NoError(t, err)
	now := gatewaytest.Now()
	frozen := e.store(t, func(c *Config) { c.Now = func() time.Time { return now } })
	require.NoError(t, frozen.UpdateStatuses(ctx(t), a.Message.ID, []gateway.RecipientStatus{
		{Address: "zed@z.example", Status: gateway.StateFailed, Attempts: 1, UpdatedAt: now},
		{Address: "Amy@A.example", Status: gateway.StateFailed, Attempts: 1, UpdatedAt: now},
	}))
	n1, _ := getNum(e.rawItem(t, recipientKey(a.Message.ID, "zed@z.example")), aN)
	n2, _ := getNum(e.rawItem(t, recipientKey(a.Message.ID, "amy@a.example")), aN)
	require.Equal(t, n1, n2, "the same position")
	for range 3 {
		st, err := frozen.GetStatuses(ctx(t), a.Message.ID)
		require.NoError(t, err)
		require.Len(t, st, 3)
		assert.Equal(t, []string{"bob@b.example", "Amy@A.example", "zed@z.example"}, []string{st[0].Address, st[1].Address, st[2].Address})
	}
}
