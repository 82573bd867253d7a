package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/agentry/agentry/internal/kit/bench/load"
	"github.com/agentry/agentry/internal/kit/bench/report"
)

// Targets of the issue.
const (
	acceptRatioTarget  = 0.5  // accept throughput ≥ 0.5 × floor
	acceptP99TargetMS  = 10   // accept p99 ≤ 10 ms
	deliverRatioTarget = 0.25 // delivered throughput ≥ 0.25 × floor
	deliverP99TargetMS = 50   // accept-to-delivery p99 ≤ 50 ms
	// federation delivered ≥ 0.5 × its own floor, the signing relay
	// chain (floor.StartRelay), measured in the same run.
	federationRatioTarget = 0.5
	rssPer10kTargetMB     = 5   // RSS growth per 10,000 queued messages
	storeOverheadTarget   = 512 // store bytes per message beyond the payload
)

// floor measures the bare handler with the very requests the accept
// scenario sends (same sizes, same headers), served by a process of its
// own as the gateways are.
func (r *run) floor(ctx context.Context) (err error) {
	srv, err := startChild(childFloor, nil, "", nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.stop()) }()
	client := load.NewClient(r.o.Concurrency)
	defer client.CloseIdleConnections()
	msgs := newMessages("alice@localhost", "bob@localhost", r.o.PayloadBytes)
	key := randomKey("amtp_")
	res, err := r.measure(ctx, Floor, r.loadConfig(), load.HTTPOp(client, func(_, seq int) (*http.Request, error) {
		_, body := msgs.Make(seq)
		return post(srv.url+"/v1/messages", key, body)
	}))
	if err != nil {
		return err
	}
	r.addLatency(Floor, "throughput", "req/s", res, nil, nil)
	return nil
}

// accept measures POST /v1/messages on the local gateway in its `make
// run` configuration, from a sender agent to a pull agent of the same
// domain: the message is durably stored and in the recipient's inbox when
// the 202 is sent.
func (r *run) accept(ctx context.Context) (err error) {
	dir, err := r.scenarioDir(Accept)
	if err != nil {
		return err
	}
	gw, err := r.startGateway(Accept, dir, "localhost", nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, gw.stop()) }()
	alice, err := register(gw.url, gw.adminKey, "alice", "pull", "")
	if err != nil {
		return err
	}
	if _, err := register(gw.url, gw.adminKey, "bob", "pull", ""); err != nil {
		return err
	}
	client := load.NewClient(r.o.Concurrency)
	defer client.CloseIdleConnections()
	msgs := newMessages("alice@localhost", "bob@localhost", r.o.PayloadBytes)
	url := gw.url + "/v1/messages"
	before, err := gw.commits()
	if err != nil {
		return err
	}
	res, err := r.measure(ctx, Accept, r.loadConfig(), load.HTTPOp(client, func(_, seq int) (*http.Request, error) {
		_, body := msgs.Make(seq)
		return post(url, alice, body)
	}))
	if err != nil {
		return err
	}
	r.addLatency(Accept, "throughput", "req/s", res, report.RatioAtLeast(acceptRatioTarget), report.AtMost(acceptP99TargetMS))
	if after, err := gw.commits(); err == nil && after.Commits > before.Commits {
		commits := after.Commits - before.Commits
		secs := (r.loadConfig().Warmup + r.loadConfig().Duration).Seconds()
		r.rep.Note("accept: %.1f writes per group (one log sync each), %.0f groups/s (warm-up included)",
			float64(after.Writes-before.Writes)/float64(commits), float64(commits)/secs)
	}
	// What the 202 promised must be true: the recipient's inbox holds the
	// messages (a quick check on one page, not a count).
	status, out, err := callJSON("GET", gw.url+"/v1/inbox/bob@localhost?limit=1", gw.adminKey, nil)
	if err != nil {
		return err
	}
	if list, _ := out["messages"].([]any); status != http.StatusOK || len(list) == 0 {
		return fmt.Errorf("after the run bob's inbox is empty (HTTP %d)", status)
	}
	return nil
}
