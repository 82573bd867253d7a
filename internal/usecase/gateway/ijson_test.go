package gateway_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// newNumbersService is a gateway for example.org with pull agents alice and
// bob, as the I-JSON tests below need it.
func newNumbersService(t *testing.T) *gateway.Service {
	t.Helper()
	svc, _ := localService(t, nil, "alice", "bob")
	return svc
}

// TestAcceptRefusesInexactNumbers: a number that a double cannot hold
// exactly (I-JSON, RFC 7493) is refused with INVALID_MESSAGE_FORMAT
// wherever it is in the message, rather than rounded into the idempotency
// digest or a signature.
func TestAcceptRefusesInexactNumbers(t *testing.T) {
	cases := []struct {
		name     string
		members  string // after recipients
		wantCode amtp.Code
	}{
		{name: "integer beyond 2^64 in payload", members: `"payload":{"amount":12345678901234567890}`, wantCode: amtp.CodeInvalidMessageFormat},
		{name: "2^53+1 nested in payload", members: `"payload":{"lines":[{"qty":9007199254740993}]}`, wantCode: amtp.CodeInvalidMessageFormat},
		{name: "negative 2^53+1", members: `"payload":[-9007199254740993]`, wantCode: amtp.CodeInvalidMessageFormat},
		{name: "more fraction digits than a double holds", members: `"payload":{"rate":0.10000000000000000001}`, wantCode: amtp.CodeInvalidMessageFormat},
		{name: "underflow", members: `"payload":{"tiny":1e-400}`, wantCode: amtp.CodeInvalidMessageFormat},
		{name: "overflow", members: `"payload":{"huge":1e400}`, wantCode: amtp.CodeInvalidMessageFormat},
		{name: "in an unknown extension member", members: `"payload":{},"x-total":2.00000000000000000001`, wantCode: amtp.CodeInvalidMessageFormat},
		{name: "in coordination", members: `"coordination":{"type":"parallel","timeout":60,"x-weight":9007199254740993},"payload":{}`, wantCode: amtp.CodeInvalidMessageFormat},
		{name: "exact numbers", members: `"payload":{"a":9007199254740992,"b":0.1,"c":1e2,"d":123456789012345680000,"e":-0,"f":1.5e-7,"g":5e-324,"h":1.7976931348623157e308}`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := newNumbersService(t)
			body := fmt.Sprintf(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"idempotency_key":"k-%d",%s}`, i, tc.members)
			res, err := svc.Accept(context.Background(), gateway.Principal{Kind: gateway.AdminCaller}, []byte(body))
			if tc.wantCode == "" {
				require.NoError(t, err)
				assert.Equal(t, gateway.OutcomeQueued, res.Outcome)
				return
			}
			require.Error(t, err, "accepted with status %v", res)
			e, ok := amtp.AsError(err)
			require.True(t, ok, "want %s, got %v", tc.wantCode, err)
			assert.Equal(t, tc.wantCode, e.Code)
		})
	}
}

// TestIdempotencyCannotRoundNumbers: two submissions under one key whose
// amounts differ beyond a double's precision used to share a digest, so
// the second was accepted with the first one's message id. Both are
// refused now, and neither uses up the key.
func TestIdempotencyCannotRoundNumbers(t *testing.T) {
	svc := newNumbersService(t)
	ctx := context.Background()
	admin := gateway.Principal{Kind: gateway.AdminCaller}
	submit := func(amount string) (*gateway.AcceptResult, error) {
		body := `{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"idempotency_key":"pay-1","payload":{"amount":` + amount + `}}`
		return svc.Accept(ctx, admin, []byte(body))
	}
	for _, amount := range []string{"12345678901234567890", "12345678901234567891"} {
		res, err := submit(amount)
		require.Error(t, err, "amount %s accepted: %+v", amount, res)
		assert.True(t, amtp.IsCode(err, amtp.CodeInvalidMessageFormat), "amount %s: %v", amount, err)
	}
	res, err := submit("1234567890")
	require.NoError(t, err)
	assert.Equal(t, gateway.OutcomeQueued, res.Outcome)
	assert.False(t, res.Duplicate, "the refused submissions left nothing under the key")
}
