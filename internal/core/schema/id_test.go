package schema

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseIDValid(t *testing.T) {
	tests := []struct {
		in   string
		want ID
	}{
		{"agntcy:commerce.order.v2", ID{"agntcy", "commerce.order", 2, NoMinor}},
		{"agntcy:commerce.order.v2.3", ID{"agntcy", "commerce.order", 2, 3}},
		{"agntcy:commerce.order.v2.0", ID{"agntcy", "commerce.order", 2, 0}},
		{"agntcy:commerce.order.v0", ID{"agntcy", "commerce.order", 0, NoMinor}},
		{"agntcy:logistics.pickup_confirmation.v1", ID{"agntcy", "logistics.pickup_confirmation", 1, NoMinor}},
		{"agentry:workflow.result.v1", ID{"agentry", "workflow.result", 1, NoMinor}},
		{"acme:eu-west.billing.invoice-line.v10.12", ID{"acme", "eu-west.billing.invoice-line", 10, 12}},
		{"x-1:a.b.v1", ID{"x-1", "a.b", 1, NoMinor}},
		{"agntcy:3d.model.v1", ID{"agntcy", "3d.model", 1, NoMinor}},
		// A segment that looks like a version is still a name segment:
		// the version is always the last one (or two).
		{"agntcy:api.v1.order.v2", ID{"agntcy", "api.v1.order", 2, NoMinor}},
		{"agntcy:a.b.v123456789.987654321", ID{"agntcy", "a.b", 123456789, 987654321}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseID(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.in, got.String(), "String round-trips")
		})
	}
}

func TestParseIDInvalid(t *testing.T) {
	long := "agntcy:" + strings.Repeat("a", MaxIDLen) + ".b.v1"
	atLimit := "agntcy:" + strings.Repeat("a", MaxIDLen-len("agntcy:.b.v1")) + ".b.v1"
	require.Len(t, atLimit, MaxIDLen)
	_, err := ParseID(atLimit)
	require.NoError(t, err, "exactly MaxIDLen is fine")

	tests := []struct {
		name, in, reason string
	}{
		{"empty", "", "empty"},
		{"too long", long, "longer than"},
		{"no namespace", "commerce.order.v2", "missing namespace"},
		{"empty namespace", ":commerce.order.v2", "namespace"},
		{"upper-case namespace", "AGNTCY:commerce.order.v2", "namespace"},
		{"namespace starts with digit", "1x:commerce.order.v2", "namespace"},
		{"namespace with dot", "ag.ntcy:commerce.order.v2", "namespace"},
		{"upper-case name", "agntcy:Commerce.order.v2", "name segments"},
		{"upper-case version", "agntcy:commerce.order.V2", "missing version"},
		{"missing version", "agntcy:commerce.order", "missing version"},
		{"minor without major", "agntcy:commerce.order.2", "missing version"},
		{"bare v", "agntcy:commerce.order.v", "missing version"},
		{"leading zero major", "agntcy:commerce.order.v02", "missing version"},
		{"leading zero minor", "agntcy:commerce.order.v2.01", "missing version"},
		{"negative", "agntcy:commerce.order.v-2", "missing version"},
		{"patch version", "agntcy:commerce.order.v1.2.3", "missing version"},
		{"huge major", "agntcy:commerce.order.v9999999999", "missing version"},
		{"entity missing", "agntcy:commerce.v2", "at least <domain>.<entity>"},
		{"name missing", "agntcy:v2", "at least <domain>.<entity>"},
		{"empty segment", "agntcy:commerce..order.v2", "name segments"},
		{"leading dot", "agntcy:.commerce.order.v2", "name segments"},
		{"segment starts with hyphen", "agntcy:commerce.-order.v2", "name segments"},
		{"second colon", "agntcy:x:commerce.order.v2", "name segments"},
		{"slash", "agntcy:commerce/order.v2", "at least"},
		{"space", "agntcy:commerce.order .v2", "name segments"},
		{"trailing dot", "agntcy:commerce.order.v2.", "missing version"},
		{"wildcard", "agntcy:commerce.*", "missing version"},
		{"non-ascii", "agntcy:commérce.order.v2", "name segments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseID(tt.in)
			require.ErrorIs(t, err, ErrInvalidID)
			assert.Contains(t, err.Error(), tt.reason)
			assert.Less(t, len(err.Error()), 300, "the message quotes a bounded prefix only")
		})
	}
}

func TestCompatible(t *testing.T) {
	tests := []struct {
		supported, got string
		want           bool
	}{
		{"agntcy:commerce.order.v2", "agntcy:commerce.order.v2", true},
		{"agntcy:commerce.order.v2", "agntcy:commerce.order.v2.0", true},
		{"agntcy:commerce.order.v2", "agntcy:commerce.order.v2.3", true},
		{"agntcy:commerce.order.v2.1", "agntcy:commerce.order.v2", true},
		{"agntcy:commerce.order.v2.1", "agntcy:commerce.order.v2.0", true},
		{"agntcy:commerce.order.v2.1", "agntcy:commerce.order.v2.1", true},
		{"agntcy:commerce.order.v2.1", "agntcy:commerce.order.v2.2", false},
		{"agntcy:commerce.order.v2.0", "agntcy:commerce.order.v2", true},
		{"agntcy:commerce.order.v2.0", "agntcy:commerce.order.v2.1", false},
		{"agntcy:commerce.order.v2", "agntcy:commerce.order.v1", false},
		{"agntcy:commerce.order.v2", "agntcy:commerce.order.v3", false},
		{"agntcy:commerce.order.v2.5", "agntcy:commerce.order.v3.0", false},
		{"agntcy:commerce.order.v2", "acme:commerce.order.v2", false},
		{"agntcy:commerce.order.v2", "agntcy:commerce.orders.v2", false},
		{"agntcy:commerce.order.v2", "agntcy:commerce.order.line.v2", false},
	}
	for _, tt := range tests {
		t.Run(tt.supported+"/"+tt.got, func(t *testing.T) {
			s, err := ParseID(tt.supported)
			require.NoError(t, err)
			g, err := ParseID(tt.got)
			require.NoError(t, err)
			assert.Equal(t, tt.want, Compatible(s, g))
		})
	}
}

func TestSupports(t *testing.T) {
	draftRecord := []string{"agntcy:commerce.*", "agntcy:finance.payment.*"}
	tests := []struct {
		name     string
		patterns []string
		id       string
		want     bool
	}{
		{"prefix", draftRecord, "agntcy:commerce.order.v2", true},
		{"second prefix", draftRecord, "agntcy:finance.payment.v1.4", true},
		{"outside prefixes", draftRecord, "agntcy:finance.invoice.v1", false},
		{"other namespace", draftRecord, "acme:commerce.order.v1", false},
		{"prefix is literal", []string{"agntcy:commerce*"}, "agntcy:commerce-eu.order.v1", true},
		{"star matches all", []string{"*"}, "acme:x.y.v1", true},
		{"exact", []string{"agntcy:commerce.order.v2"}, "agntcy:commerce.order.v2", true},
		{"major declared, minor sent", []string{"agntcy:commerce.order.v2"}, "agntcy:commerce.order.v2.7", true},
		{"minor too new", []string{"agntcy:commerce.order.v2.1"}, "agntcy:commerce.order.v2.2", false},
		{"minor older", []string{"agntcy:commerce.order.v2.1"}, "agntcy:commerce.order.v2.0", true},
		{"other major", []string{"agntcy:commerce.order.v2"}, "agntcy:commerce.order.v3", false},
		{"spaces around entries", []string{" agntcy:commerce.order.v2 "}, "agntcy:commerce.order.v2", true},
		{"bad entry skipped", []string{"NOT AN ID", "", "agntcy:a.b.v1"}, "agntcy:a.b.v1", true},
		{"invalid id never", []string{"*"}, "Agntcy:a.b.v1", false},
		{"no patterns", nil, "agntcy:a.b.v1", false},
		{"upper-case pattern never matches", []string{"AGNTCY:*"}, "agntcy:a.b.v1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Supports(tt.patterns, tt.id))
		})
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{
		"agntcy:commerce.order.v2",
		"agntcy:commerce.order.v2.3",
		"agntcy:logistics.pickup_confirmation.v1",
		"acme:a-b.c_d.e.v0.0",
		"agntcy:api.v1.order.v2",
		"agntcy:commerce.order.v02",
		"agntcy:commerce.*",
		"AGNTCY:x.y.v1",
		"a:b.c.v1.2.3",
		":.v",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidID)
			return
		}
		require.LessOrEqual(t, len(s), MaxIDLen)
		require.Equal(t, s, id.String(), "only canonical spellings parse")
		again, err := ParseID(id.String())
		require.NoError(t, err)
		require.Equal(t, id, again)
		require.True(t, Compatible(id, id))
		require.True(t, Supports([]string{s}, s))
	})
}
