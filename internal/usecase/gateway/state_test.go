package gateway

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDeriveState(t *testing.T) {
	q := RecipientStatus{Status: StateQueued}
	r := RecipientStatus{Status: StateRetrying, Attempts: 1}
	d := RecipientStatus{Status: StateDelivered, Attempts: 1}
	f := RecipientStatus{Status: StateFailed, Attempts: 1}
	fSync := RecipientStatus{Status: StateFailed}
	cases := []struct {
		in   []RecipientStatus
		want MessageState
	}{
		{nil, MessageAccepted},
		{[]RecipientStatus{q}, MessageAccepted},
		{[]RecipientStatus{q, q}, MessageAccepted},
		{[]RecipientStatus{r}, MessageDelivering},
		{[]RecipientStatus{q, d}, MessageDelivering},
		{[]RecipientStatus{q, fSync}, MessageDelivering},
		{[]RecipientStatus{d}, MessageDelivered},
		{[]RecipientStatus{d, d}, MessageDelivered},
		{[]RecipientStatus{f}, MessageFailed},
		{[]RecipientStatus{f, fSync}, MessageFailed},
		{[]RecipientStatus{d, f}, MessagePartiallyDelivered},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, DeriveState(c.in), "%v", c.in)
	}
}

func TestSchemaListMatches(t *testing.T) {
	assert.True(t, SchemaListMatches([]string{"agntcy:commerce.*"}, "agntcy:commerce.order.v2"))
	assert.True(t, SchemaListMatches([]string{"agntcy:commerce.order.v2"}, "agntcy:commerce.order.v2"))
	assert.False(t, SchemaListMatches([]string{"agntcy:commerce.*"}, "agntcy:finance.payment.v1"))
	assert.False(t, SchemaListMatches(nil, "agntcy:x.y.v1"))
}

func TestTXTRecord(t *testing.T) {
	assert.Equal(t, "v=amtp1;gateway=https://gw.example.com;auth=apikey;max-size=10485760",
		TXTRecord("https://gw.example.com", DefaultAuthMethods, 10485760))
}
