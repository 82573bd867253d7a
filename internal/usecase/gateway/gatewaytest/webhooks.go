package gatewaytest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// WebhookFactory returns a fresh, empty gateway.WebhookStore, closed by
// t.Cleanup.
type WebhookFactory func(t *testing.T) gateway.WebhookStore

// RunWebhookStore checks a gateway.WebhookStore.
func RunWebhookStore(t *testing.T, f WebhookFactory) {
	t.Run("PutGetDelete", func(t *testing.T) { testWebhookPutGetDelete(t, f(t)) })
	t.Run("ListByOwner", func(t *testing.T) { testWebhookListByOwner(t, f(t)) })
	t.Run("Replace", func(t *testing.T) { testWebhookReplace(t, f(t)) })
	t.Run("Unknown", func(t *testing.T) { testWebhookUnknown(t, f(t)) })
}

func newWebhook(owner string) gateway.WebhookSubscription {
	return gateway.WebhookSubscription{ID: NewID("wh"), Owner: owner, URL: "https://hooks.a.example/agentry",
		Events: []gateway.WebhookEvent{gateway.EventMessageDelivered, gateway.EventWorkflowCompleted},
		Secret: "whsec_c2VjcmV0", CreatedAt: Now()}
}

func assertWebhook(t *testing.T, want, got gateway.WebhookSubscription) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, want.Owner, got.Owner)
	assert.Equal(t, want.URL, got.URL)
	assert.Equal(t, want.Events, got.Events)
	assert.Equal(t, want.Secret, got.Secret)
	assert.Equal(t, want.Disabled, got.Disabled)
	assert.True(t, want.CreatedAt.Equal(got.CreatedAt), "created_at %s, want %s", got.CreatedAt, want.CreatedAt)
	if want.FailingSince == nil {
		assert.Nil(t, got.FailingSince)
	} else if assert.NotNil(t, got.FailingSince) {
		assert.True(t, want.FailingSince.Equal(*got.FailingSince), "failing_since %s, want %s", got.FailingSince, want.FailingSince)
	}
}

func testWebhookPutGetDelete(t *testing.T, s gateway.WebhookStore) {
	w := newWebhook("bob@a.example")
	require.NoError(t, s.PutWebhook(ctx(t), w))
	got, err := s.GetWebhook(ctx(t), w.ID)
	require.NoError(t, err)
	assertWebhook(t, w, got)

	require.NoError(t, s.DeleteWebhook(ctx(t), w.ID))
	_, err = s.GetWebhook(ctx(t), w.ID)
	require.ErrorIs(t, err, gateway.ErrNotFound)
	list, err := s.ListWebhooks(ctx(t), w.Owner)
	require.NoError(t, err)
	assert.Empty(t, list, "a deleted subscription is no longer listed")
	require.ErrorIs(t, s.DeleteWebhook(ctx(t), w.ID), gateway.ErrNotFound)
}

func testWebhookListByOwner(t *testing.T, s gateway.WebhookStore) {
	bob1, bob2 := newWebhook("bob@a.example"), newWebhook("bob@a.example")
	carol, admin := newWebhook("carol@a.example"), newWebhook("")
	for _, w := range []gateway.WebhookSubscription{bob2, carol, admin, bob1} {
		require.NoError(t, s.PutWebhook(ctx(t), w))
	}
	tests := []struct {
		owner string
		want  []gateway.WebhookSubscription
	}{
		{"bob@a.example", []gateway.WebhookSubscription{bob1, bob2}},
		{"carol@a.example", []gateway.WebhookSubscription{carol}},
		{"", []gateway.WebhookSubscription{admin}},
		{"dave@a.example", nil},
	}
	for _, tt := range tests {
		t.Run("owner="+tt.owner, func(t *testing.T) {
			got, err := s.ListWebhooks(ctx(t), tt.owner)
			require.NoError(t, err)
			require.Len(t, got, len(tt.want))
			for i := range tt.want {
				assertWebhook(t, tt.want[i], got[i])
			}
		})
	}
}

func testWebhookReplace(t *testing.T, s gateway.WebhookStore) {
	w := newWebhook("bob@a.example")
	require.NoError(t, s.PutWebhook(ctx(t), w))
	since := Now().Add(-time.Hour)
	w.FailingSince, w.Disabled = &since, true
	require.NoError(t, s.PutWebhook(ctx(t), w))
	got, err := s.GetWebhook(ctx(t), w.ID)
	require.NoError(t, err)
	assertWebhook(t, w, got)
	list, err := s.ListWebhooks(ctx(t), w.Owner)
	require.NoError(t, err)
	require.Len(t, list, 1, "a replaced subscription is listed once")
	assertWebhook(t, w, list[0])
}

func testWebhookUnknown(t *testing.T, s gateway.WebhookStore) {
	_, err := s.GetWebhook(ctx(t), "wh_none")
	require.ErrorIs(t, err, gateway.ErrNotFound)
	require.ErrorIs(t, s.DeleteWebhook(ctx(t), "wh_none"), gateway.ErrNotFound)
}
