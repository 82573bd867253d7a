package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDynamoShards: the shard counts of the DynamoDB listings default to
// 0 (the adapter's defaults), take 1 to 16, and refuse anything else.
func TestDynamoShards(t *testing.T) {
	for _, tc := range []struct {
		name            string
		vars            map[string]string
		listings, inbox int
		wantErr         string
	}{
		{"defaults", nil, 0, 0, ""},
		{"set", map[string]string{"AGENTRY_DYNAMO_LISTING_SHARDS": "8", "AGENTRY_DYNAMO_INBOX_SHARDS": "2"}, 8, 2, ""},
		{"too many", map[string]string{"AGENTRY_DYNAMO_LISTING_SHARDS": "17"}, 0, 0, "AGENTRY_DYNAMO_LISTING_SHARDS"},
		{"not a number", map[string]string{"AGENTRY_DYNAMO_INBOX_SHARDS": "four"}, 0, 0, "AGENTRY_DYNAMO_INBOX_SHARDS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromEnv(env(tc.vars))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.listings, c.ListingShards)
			assert.Equal(t, tc.inbox, c.InboxShards)
		})
	}
}
