package dynamo

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// TestStoredTasks: tasks kept on a message item come back exactly, the
// usual ones in a few bytes each.
func TestStoredTasks(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 123_000_000, time.UTC)
	id := "0193b0c4-msg"
	to := []string{"Bob@b.example", "carol@c.example", "dave@remote.example"}
	cases := []struct {
		name string
		task gateway.Task
		// maxBytes bounds its encoding; 0 for no bound.
		maxBytes int
	}{
		{"local, at accept", gateway.Task{ID: id + "|bob@b.example", MessageID: id, Kind: gateway.TaskLocal, Recipients: []string{"Bob@b.example"}, CreatedAt: at}, 10},
		{"immediate path", gateway.Task{ID: id + "|carol@c.example", MessageID: id, Kind: gateway.TaskLocal, Recipients: []string{"carol@c.example"}, CreatedAt: at, NotBefore: at.Add(1500 * time.Millisecond)}, 25},
		{"remote", gateway.Task{ID: id + "|dave@remote.example", MessageID: id, Kind: gateway.TaskRemote, Recipients: []string{"dave@remote.example"}, Domain: "remote.example", CreatedAt: at.Add(-time.Millisecond)}, 40},
		{"not a recipient, other domain", gateway.Task{ID: "custom", MessageID: "other", Kind: gateway.TaskRemote, Recipients: []string{"erin@e.example", "frank@e.example"}, Domain: "relay.example", Attempt: 2, CreatedAt: at}, 0},
		{"remote without a domain", gateway.Task{ID: id + "|dave@remote.example", MessageID: id, Kind: gateway.TaskRemote, Recipients: []string{"dave@remote.example"}, CreatedAt: at}, 0},
		{"workflow timeout", gateway.Task{ID: id + "|workflow-timeout", MessageID: id, Kind: gateway.TaskWorkflowTimeout, CreatedAt: at, NotBefore: at.Add(72 * time.Hour), Token: "tok", Round: 3}, 0},
		{"zero times", gateway.Task{ID: id + "|bob@b.example", MessageID: id, Kind: gateway.TaskLocal, Recipients: []string{"Bob@b.example"}}, 0},
		{"no kind", gateway.Task{ID: id + "|bob@b.example", MessageID: id, Recipients: []string{"Bob@b.example"}, CreatedAt: at}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tasksAttr([]gateway.Task{tc.task}, id, to, at)
			require.NoError(t, err)
			if tc.maxBytes > 0 {
				assert.LessOrEqual(t, len(raw)-2, tc.maxBytes, "%s", raw)
			}
			got, err := decodeTasks(id, item{aMsgTasks: str(raw), aTo: strList(to), aAt: timeAttr(at)})
			require.NoError(t, err)
			require.Len(t, got, 1)
			g, w := got[0], tc.task
			assert.True(t, w.CreatedAt.Equal(g.CreatedAt), "created_at %v, want %v", g.CreatedAt, w.CreatedAt)
			assert.True(t, w.NotBefore.Equal(g.NotBefore), "not_before %v, want %v", g.NotBefore, w.NotBefore)
			g.CreatedAt, g.NotBefore, w.CreatedAt, w.NotBefore = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			assert.Equal(t, w, g)
		})
	}

	for _, bad := range []string{`[{`, `[{"x":9}]`, `[{"ca":"yesterday"}]`, `[{"na":"x"}]`} {
		_, err := decodeTasks(id, item{aMsgTasks: str(bad), aTo: strList(to), aAt: timeAttr(at)})
		assert.Error(t, err, bad)
	}
}
