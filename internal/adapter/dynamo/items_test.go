package dynamo

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/dynamo/itemsize"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// The specs a message item carries leave out what the item already says;
// whatever differs from it must still come back exactly.
func TestSpecsRoundTrip(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	later := at.Add(time.Second)
	to := []string{"bob@b.example", "Carol@C.example", "dave@d.example"}
	specs := []recipientSpec{
		{Address: "bob@b.example", Status: gateway.RecipientStatus{Address: "bob@b.example", Status: gateway.StateQueued, UpdatedAt: at}},
		// Spelled differently from `to`, filed in the inbox at accept.
		{Address: "carol@c.example", Status: gateway.RecipientStatus{Address: "carol@c.example", Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: at, DeliveredAt: &at, Via: "inbox"}, Inbox: &at},
		// Another time, filed later (not made by Accept, but encodable).
		{Address: "dave@d.example", Status: gateway.RecipientStatus{Address: "dave@d.example", Status: gateway.StateFailed, UpdatedAt: later, ErrorCode: "AGENT_UNKNOWN", ErrorMessage: "no"}, Inbox: &later},
		// Beyond `to`.
		{Address: "erin@e.example", Status: gateway.RecipientStatus{Address: "erin@e.example", Status: gateway.StateQueued, UpdatedAt: at}},
	}
	for i := range specs {
		specs[i].N = int64(i)
		specs[i].Indexed = true
	}
	msg := item{aTo: strList(to), aAt: timeAttr(at), aSpecs: specsAttr(specs, to, at)}
	got, err := decodeSpecs(msg)
	require.NoError(t, err)
	require.Len(t, got, len(specs))
	for i, want := range specs {
		g := got[i]
		assert.Equal(t, want.Address, g.Address, i)
		assert.Equal(t, want.N, g.N, i)
		assert.True(t, g.Indexed, i)
		assert.Equal(t, want.Status.Status, g.Status.Status, i)
		assert.Equal(t, want.Status.Attempts, g.Status.Attempts, i)
		assert.True(t, want.Status.UpdatedAt.Equal(g.Status.UpdatedAt), "%d: updated %v, want %v", i, g.Status.UpdatedAt, want.Status.UpdatedAt)
		assert.Equal(t, want.Status.ErrorCode, g.Status.ErrorCode, i)
		assert.Equal(t, want.Status.Via, g.Status.Via, i)
		if want.Inbox == nil {
			assert.Nil(t, g.Inbox, i)
		} else if assert.NotNil(t, g.Inbox, i) {
			assert.True(t, want.Inbox.Equal(*g.Inbox), i)
		}
	}
	// The common case, a queued recipient as given: little more than its
	// state.
	first := msg[aSpecs].(*types.AttributeValueMemberL).Value[0]
	assert.Less(t, itemsize.Value(first), 30)
}

func TestParseTimeSK(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	for _, tc := range []struct {
		name, sk string
		id       string
		err      string
	}{
		{"time and id", timeSK(at, "m-1"), "m-1", ""},
		{"time alone (a day boundary)", formatKeyTime(at), "", ""},
		{"too short", "2030-01-02", "", "too short"},
		{"not a time", "2030-13-02T03:04:05.006Z#m-1", "", "sort key"},
		{"no separator", formatKeyTime(at) + "m-1", "", "has no id"},
		{"empty id", formatKeyTime(at) + "#", "", "has no id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, id, err := parseTimeSK(tc.sk)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				assert.Zero(t, got)
				return
			}
			require.NoError(t, err)
			assert.True(t, at.Equal(got), "time %v, want %v", got, at)
			assert.Equal(t, tc.id, id)
		})
	}
}

// Numbers that do not parse read as absent rather than as zero values
// that would pass for real ones.
func TestNumberAttributes(t *testing.T) {
	it := item{
		"int":     num(42),
		"dec":     decimal(0.25),
		"float":   &types.AttributeValueMemberN{Value: "1.5"},
		"garbage": &types.AttributeValueMemberN{Value: "x"},
		"string":  str("42"),
	}
	for _, tc := range []struct {
		name          string
		n             int64
		nOK           bool
		decimal       float64
		decimalPassed bool
	}{
		{"int", 42, true, 42, true},
		{"dec", 0, false, 0.25, true},
		{"float", 0, false, 1.5, true},
		{"garbage", 0, false, 0, false},
		{"string", 0, false, 0, false},
		{"absent", 0, false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := getNum(it, tc.name)
			assert.Equal(t, tc.nOK, ok)
			assert.Equal(t, tc.n, n)
			d, ok := getDecimal(it, tc.name)
			assert.Equal(t, tc.decimalPassed, ok)
			assert.Equal(t, tc.decimal, d)
		})
	}
}

func TestDecodeStatus(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	next := at.Add(time.Minute)
	full := gateway.RecipientStatus{Address: "bob@b.example", Status: gateway.StateRetrying, Attempts: 2, UpdatedAt: at, NextRetry: &next,
		DeliveredAt: &at, ErrorCode: "DELIVERY_TIMEOUT", ErrorMessage: "slow", Via: "webhook", Response: []byte(`{"ok":true}`)}
	got, err := decodeStatus(full.Address, statusAttr(full))
	require.NoError(t, err)
	assert.Equal(t, full, got, "every field round-trips")

	corrupt := func(field string) types.AttributeValue {
		m := statusAttr(full).(*types.AttributeValueMemberM)
		m.Value[field] = str("soon")
		return m
	}
	for _, tc := range []struct {
		name string
		av   types.AttributeValue
		err  string
	}{
		{"not a map", str("delivered"), "is not a map"},
		{"absent", nil, "is not a map"},
		{"updated", corrupt(stUpdated), "attribute " + stUpdated},
		{"next retry", corrupt(stNextRetry), "attribute " + stNextRetry},
		{"delivered", corrupt(stDelivered), "attribute " + stDelivered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeStatus("bob@b.example", tc.av)
			require.ErrorContains(t, err, tc.err)
			assert.ErrorContains(t, err, "bob@b.example", "the error names the recipient")
		})
	}
}

// TestDecodeSpecs: the specs of items written before "rs" existed (the
// JSON in "over") still read back, and specs that do not decode are
// errors, not recipients with zero statuses.
func TestDecodeSpecs(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	legacy := []recipientSpec{
		{Address: "bob@b.example", N: 0, Indexed: true, Status: gateway.RecipientStatus{Address: "bob@b.example", Status: gateway.StateQueued, UpdatedAt: at}},
		{Address: "carol@c.example", N: 1, Indexed: true, Inbox: &at, Status: gateway.RecipientStatus{Address: "carol@c.example", Status: gateway.StateDelivered, UpdatedAt: at, DeliveredAt: &at}},
	}
	over, err := json.Marshal(legacy)
	require.NoError(t, err)
	got, err := decodeSpecs(item{aOver: str(string(over))})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, legacy[1].Address, got[1].Address)
	assert.Equal(t, int64(1), got[1].N)
	require.NotNil(t, got[1].Inbox)
	assert.True(t, at.Equal(*got[1].Inbox))
	assert.True(t, hasSpecs(item{aOver: str(string(over))}))

	none, err := decodeSpecs(item{aTo: strList([]string{"bob@b.example"})})
	require.NoError(t, err)
	assert.Nil(t, none, "a message item without specs has none")

	good := func() item {
		specs := []recipientSpec{{Address: "bob@b.example", Status: gateway.RecipientStatus{Status: gateway.StateQueued, UpdatedAt: at}, Inbox: &at}}
		return item{aTo: strList([]string{"bob@b.example"}), aAt: timeAttr(at), aSpecs: specsAttr(specs, []string{"bob@b.example"}, at)}
	}
	spec := func(msg item) map[string]types.AttributeValue {
		return msg[aSpecs].(*types.AttributeValueMemberL).Value[0].(*types.AttributeValueMemberM).Value
	}
	for _, tc := range []struct {
		name  string
		spoil func(msg item)
		err   string
	}{
		{"legacy JSON", func(msg item) { msg[aOver] = str("[{") }, "recipients in " + aOver},
		{"accepted_at", func(msg item) { msg[aAt] = str("yesterday") }, "attribute " + aAt},
		{"not a map", func(msg item) { msg[aSpecs] = &types.AttributeValueMemberL{Value: []types.AttributeValue{str("x")}} }, "recipient 0 in " + aSpecs + " is not a map"},
		{"status", func(msg item) { spec(msg)[specStatus] = str("queued") }, "status of bob@b.example is not a map"},
		{"inbox time", func(msg item) { spec(msg)[specInbox] = str("soon") }, "recipient bob@b.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := good()
			_, err := decodeSpecs(msg)
			require.NoError(t, err, "the item before it is spoilt")
			tc.spoil(msg)
			_, err = decodeSpecs(msg)
			assert.ErrorContains(t, err, tc.err)
		})
	}
}

func TestVoids(t *testing.T) {
	void := item{aVoided: &types.AttributeValueMemberSS{Value: []string{"tok-a", "tok-b"}}}
	for _, tc := range []struct {
		name string
		msg  item
		tok  string
		want bool
	}{
		{"stops a token it holds", void, "tok-b", true},
		{"not one it does not hold", void, "tok-c", false},
		{"a message is no void", item{aTok: str("tok-a")}, "tok-a", false},
		{"nor a void of another type", item{aVoided: str("tok-a")}, "tok-a", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, voids(tc.msg, tc.tok))
		})
	}
}

// A projection's alias is what other expressions of the request use; one
// asked for an attribute the projection lacks is a programming error.
func TestProjectionAlias(t *testing.T) {
	p := project(aPK, aSK, aFrom)
	for _, attr := range []string{aPK, aSK, aFrom} {
		assert.Equal(t, attr, p.names[p.alias(attr)])
	}
	assert.PanicsWithValue(t, "dynamo: attribute "+aTo+" is not in the projection", func() { p.alias(aTo) })
}
