package bench

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awscost"
)

// TestClassify: keys naming pool members, shards and messages fold into
// classes, and one key's load per message is the class's divided by the
// keys it stands for.
func TestClassify(t *testing.T) {
	h := awscost.Heat{
		{Index: "gsi2", Key: "DAY#2026-12-07"}:    {WriteUnits: 20},
		{Index: "gsi2", Key: "DAY#2026-12-07#1"}:  {WriteUnits: 30},
		{Index: "gsi2", Key: "DAY#2026-12-07#2"}:  {WriteUnits: 10},
		{Index: "gsi1", Key: "TO#r007@localhost"}: {WriteUnits: 2},
		{Index: "gsi1", Key: "TO#r008@localhost"}: {WriteUnits: 2},
		{Key: "AGENT#hotpush@localhost"}:          {ReadUnits: 20},
		{Key: "MSG#0190-abc"}:                     {WriteUnits: 7},
		{Key: "MSG#0190-abd"}:                     {WriteUnits: 13},
		{Key: "IDK#5f0c-key"}:                     {WriteUnits: 1},
		{Key: "IDK#77aa-key"}:                     {WriteUnits: 1},
		{Key: "TO#hotpush@localhost"}:             {WriteUnits: 4},
		{Key: "TO#hotpush@localhost#3"}:           {WriteUnits: 4},
	}
	got := map[string]keyLoad{}
	for _, k := range classify(h, 10) {
		got[k.class] = k
	}
	for _, tc := range []struct {
		class       string
		write, read float64
		members     int
	}{
		{"gsi2 DAY#2026-12-07#<shard>", 2, 0, 3}, // shard 0 is the plain key
		{"gsi1 TO#<recipient>@localhost", 4.0 / 1000 / 10, 0, 1000},
		{"AGENT#hotpush@localhost", 0, 2, 1},
		{"MSG#<id>", 10, 0, 2},
		{"IDK#<key>", 1, 0, 2},                      // an idempotency record's partition is its submission's
		{"TO#hotpush@localhost#<shard>", 0.4, 0, 2}, // recipient items are their TO# entries, sharded
	} {
		t.Run(tc.class, func(t *testing.T) {
			k, ok := got[tc.class]
			require.True(t, ok, "classes: %v", got)
			assert.InDelta(t, tc.write, k.write, 1e-12)
			assert.InDelta(t, tc.read, k.read, 1e-12)
			assert.Equal(t, tc.members, k.members)
		})
	}
	assert.Len(t, got, 6)
	// Shards the sample did not reach still share the load.
	for _, k := range classifySharded(h, 10, func(string) int { return 6 }) {
		if k.class == "gsi2 DAY#2026-12-07#<shard>" {
			assert.Equal(t, 6, k.members)
			assert.InDelta(t, 1.0, k.write, 1e-12)
		}
	}
	hot := hottest(classify(h, 10))
	assert.Equal(t, "gsi2 DAY#2026-12-07#<shard>", hot.class, "per-message partitions are not throughput-bound")
	assert.Equal(t, 500.0, hot.ceiling())
	assert.True(t, math.IsInf(keyLoad{}.ceiling(), 1))
}

// TestHeatTiny runs the heat scenario with small pools and few messages:
// it proves that it drives the AWS gateway against moto, books units by
// partition and reports every row.
func TestHeatTiny(t *testing.T) {
	defer func(n, f int) { heatMessages, heatFanOuts = n, f }(heatMessages, heatFanOuts)
	heatMessages, heatFanOuts = 8, 2
	defer func(sizes []int) {
		for i, s := range sizes {
			heatPools[i].size = s
		}
	}([]int{heatPools[0].size, heatPools[1].size, heatPools[2].size})
	heatPools[0].size, heatPools[1].size, heatPools[2].size = 4, 8, 3
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Scenarios: []string{Heat}, Progress: testLog{t}, WorkDir: t.TempDir()})
	require.NoError(t, err)
	var table bytes.Buffer
	require.NoError(t, rep.WriteTable(&table))
	t.Logf("\n%s", table.String())
	for _, key := range []string{
		"heat/a uniform msg/s before a hot partition",
		"heat/b hot push agent msg/s to the hot agent before a hot partition",
		"heat/c hot inbox msg/s into the hot inbox before a hot partition",
		"heat/d fan-out hottest key at 1,000 fan-outs/s",
		"heat/a uniform msg/s at the first account quota", "heat/d fan-out msg/s at the first account quota",
		"heat/a uniform WRU/msg", "heat/c hot inbox WRU/msg",
	} {
		row := rep.Find(key)
		if !assert.NotNil(t, row, key) {
			continue
		}
		assert.False(t, math.IsNaN(row.Value) || math.IsInf(row.Value, 0) || row.Value <= 0, "%s = %v", key, row.Value)
		if row.Target != nil {
			assert.NotNil(t, row.Pass, "%s has a verdict", key)
		}
	}
}
