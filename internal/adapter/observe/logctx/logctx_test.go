package logctx_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/agentry/agentry/internal/adapter/observe/logctx"
)

func TestIDs(t *testing.T) {
	bg := context.Background()
	cases := []struct {
		name         string
		ctx          context.Context
		request, msg string
	}{
		{"none", bg, "", ""},
		{"request", logctx.WithRequestID(bg, "r1"), "r1", ""},
		{"message", logctx.WithMessageID(bg, "m1"), "", "m1"},
		{"both", logctx.WithMessageID(logctx.WithRequestID(bg, "r1"), "m1"), "r1", "m1"},
		{"inner id wins", logctx.WithMessageID(logctx.WithMessageID(bg, "m1"), "m2"), "", "m2"},
		{"empty id keeps the outer one", logctx.WithRequestID(logctx.WithRequestID(bg, "r1"), ""), "r1", ""},
		{"empty message id keeps the outer one", logctx.WithMessageID(logctx.WithMessageID(bg, "m1"), ""), "", "m1"},
		{"nil context", nil, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.request, logctx.RequestID(tc.ctx))
			assert.Equal(t, tc.msg, logctx.MessageID(tc.ctx))
		})
	}
}
