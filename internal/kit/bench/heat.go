package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentry/agentry/internal/adapter/dynamo"
	"github.com/agentry/agentry/internal/kit/awscost"
	"github.com/agentry/agentry/internal/kit/bench/report"
)

// The heat scenario drives the AWS gateway (the api function's handler and
// the deliver function's batches, as the cost scenario does) against moto
// with four mixes of traffic, books every DynamoDB unit on the partition
// key it lands on (awscost.TrackPartitions), and turns that into the
// messages a second the deployment takes before the hottest partition
// key passes DynamoDB's per-partition limits, and before an account-level
// quota does.

// heatMessages is how many messages each mix sends (the scenario's test
// sends fewer); heatFanOuts how many the fan-out mix sends, each to
// heatFanWidth recipients.
var (
	heatMessages = 200
	heatFanOuts  = 20
)

// heatFanWidth is the fan-out mix's recipients per message. The issue's
// mix has 100; against moto an accept of 100 recipients, metered (three
// calls per item written), does not finish within the store's 5-second
// work budget, and at 50 a metered deliver batch outlasts the function's
// timeout, so the mix is measured at 20. The per-key loads of FROM#, DAY#
// and each recipient's keys do not depend on the width; the message item
// (its recipients' statuses and tasks) grows with it.
const heatFanWidth = 20

// DynamoDB's limits per partition key (developer guide, "Partitions and
// data distribution"): a key whose sort keys keep growing is never split
// for heat, so these are its ceiling.
const (
	partitionWriteUnits = 1000
	partitionReadUnits  = 3000
)

// Account-level defaults an operator may have to raise (Service Quotas
// names in the notes), and the function durations assumed in AWS: the
// handlers' durations against moto say nothing about AWS's round trips.
const (
	tableUnitsQuota     = 40000 // DynamoDB on-demand, per table and per GSI, reads and writes each
	lambdaConcurrency   = 1000  // Lambda concurrent executions, per account and region
	sqsInFlight         = 120000
	apiGatewayRate      = 10000 // requests a second, per account and region
	apiSeconds          = 0.05  // one api invocation in AWS: three DynamoDB writes, an SQS send, reads
	deliverBatchSeconds = 0.1   // one deliver invocation: its records in parallel, each a webhook's answer and four DynamoDB calls
	// inFlightSeconds is how long a record stays in flight: received,
	// delivered, deleted.
	inFlightSeconds = 1.0
)

// Pools of agents. A key naming one member of a pool stands for each of
// them: every mix spreads its traffic evenly over a pool, so one member's
// load is the pool's divided by its size (which lets a mix of 200 messages
// measure 1,000 recipients without sending 1,000 messages).
var heatPools = []struct {
	name, prefix string
	size         int
	mode         string
}{
	{"<sender>", "s", 100, "pull"},
	{"<recipient>", "r", 1000, "push"},
	{"<fan-recipient>", "f", heatFanWidth, "push"},
}

// Single agents of the mixes.
const (
	heatHotPush  = "hotpush"
	heatHotPull  = "hotpull"
	heatFanOwner = "fanner"
)

func poolMember(prefix string, i, size int) string {
	width := len(fmt.Sprint(size - 1))
	return fmt.Sprintf("%s%0*d", prefix, width, i%size)
}

// heatMix is one mix of traffic: message i's sender and recipients.
type heatMix struct {
	name, what string
	n          int
	message    func(i int) (sender string, recipients []string)
	// reader lists its inbox and acknowledges every message after the
	// posts ("" for none).
	reader string
	// workers post concurrently, default 8; a fan-out's accept writes a
	// hundred items, and moto takes them one at a time.
	workers int
}

func heatMixes() []heatMix {
	senders, recipients, fanWidth := heatPools[0], heatPools[1], heatPools[2]
	sender := func(i int) string { return poolMember(senders.prefix, i, senders.size) }
	recipient := func(i int) string { return poolMember(recipients.prefix, i, recipients.size) }
	fan := make([]string, fanWidth.size)
	for i := range fan {
		fan[i] = poolMember(fanWidth.prefix, i, fanWidth.size)
	}
	return []heatMix{
		{name: "a uniform", what: fmt.Sprintf("%d senders to %d push recipients, evenly", senders.size, recipients.size), n: heatMessages,
			message: func(i int) (string, []string) { return sender(i), []string{recipient(i)} }},
		{name: "b hot push agent", what: "half of all mail to one push agent, the rest evenly", n: heatMessages,
			message: func(i int) (string, []string) {
				if i%2 == 0 {
					return sender(i / 2), []string{heatHotPush}
				}
				return sender(i / 2), []string{recipient(i / 2)}
			}},
		{name: "c hot inbox", what: "all mail into one pull inbox, read and acknowledged by its owner", n: heatMessages, reader: heatHotPull,
			message: func(i int) (string, []string) { return sender(i), []string{heatHotPull} }},
		{name: "d fan-out", what: fmt.Sprintf("one sender, each message to the same %d push recipients", fanWidth.size), n: heatFanOuts, workers: 1,
			message: func(int) (string, []string) { return heatFanOwner, fan }},
	}
}

// heatResult is what one mix measured.
type heatResult struct {
	mix  heatMix
	heat awscost.Heat
	use  awscost.Usage
	spec stackSpec
	// deliver is what the deliver function used (its DynamoDB units per
	// record size its event source's concurrency).
	deliver awscost.Usage
	// apiCalls are api function invocations (HTTP requests), records
	// the deliver function's.
	apiCalls, records int
}

// heat runs the mixes.
func (r *run) heat(ctx context.Context) (err error) {
	env, err := r.startAWSScenario(ctx, Heat)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Close()) }()
	spec, counter, hook, cg := env.spec, env.counter, env.hook, env.cg

	counter.SetEnabled(false)
	keys, err := registerHeatAgents(ctx, cg, hook.URL)
	if err != nil {
		return err
	}
	r.logf("heat: %d agents registered", len(keys))
	counter.SetEnabled(true)
	counter.TrackPartitions(true)
	defer counter.TrackPartitions(false)

	var results []heatResult
	for _, mix := range heatMixes() {
		t0 := time.Now()
		res, err := runHeatMix(ctx, cg, counter, keys, mix, spec, r.o.PayloadBytes, r.o.DeliveryTimeout)
		if err != nil {
			return fmt.Errorf("mix %s: %w", mix.name, err)
		}
		r.logf("heat: mix %s: %d messages in %v", mix.name, mix.n, time.Since(t0).Round(100*time.Millisecond))
		results = append(results, res)
	}
	for _, res := range results {
		r.heatRows(res)
	}
	r.heatNotes()
	return nil
}

// registerHeatAgents registers every agent the mixes use, a few at a
// time, and returns their API keys by name.
func registerHeatAgents(ctx context.Context, cg *costGateway, hook string) (map[string]string, error) {
	type agent struct{ name, mode string }
	// Only the members the mixes use: a pool member's load stands for
	// every member's whether or not the others exist.
	modes := map[string]string{heatHotPush: "push", heatHotPull: "pull", heatFanOwner: "pull"}
	for _, p := range heatPools {
		for i := range p.size {
			modes[poolMember(p.prefix, i, p.size)] = p.mode
		}
	}
	used := map[string]bool{}
	for _, mix := range heatMixes() {
		for i := range mix.n {
			sender, to := mix.message(i)
			used[sender] = true
			for _, r := range to {
				used[r] = true
			}
		}
		if mix.reader != "" {
			used[mix.reader] = true
		}
	}
	agents := make([]agent, 0, len(used))
	for name := range used {
		agents = append(agents, agent{name, modes[name]})
	}
	sort.Slice(agents, func(i, j int) bool { return agents[i].name < agents[j].name })
	keys := make(map[string]string, len(agents))
	var mu sync.Mutex
	err := forEachN(ctx, len(agents), 4, func(ctx context.Context, i int) error {
		a := agents[i]
		url := ""
		if a.mode == "push" {
			url = hook
		}
		// moto, loaded by 1,000 registrations, may answer one with an
		// error the gateway reports as 503; a client tries again.
		var key string
		var err error
		for range 5 {
			if key, err = cg.register(ctx, a.name, a.mode, url); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
				break
			}
		}
		if err != nil {
			return err
		}
		mu.Lock()
		keys[a.name] = key
		mu.Unlock()
		return nil
	})
	return keys, err
}

// forEachN runs f for 0…n-1 on `workers` goroutines; the first error
// stops the rest.
func forEachN(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

func runHeatMix(ctx context.Context, cg *costGateway, counter *awscost.Counter, keys map[string]string, mix heatMix, spec stackSpec, payload int, timeout time.Duration) (heatResult, error) {
	res := heatResult{mix: mix, spec: spec}
	if _, _, err := counter.Take(); err != nil {
		return res, err
	}
	counter.TakeHeat()
	var mu sync.Mutex
	workers := mix.workers
	if workers <= 0 {
		workers = 8
	}
	err := forEachN(ctx, mix.n, workers, func(ctx context.Context, i int) error {
		sender, to := mix.message(i)
		msgs := newMessages(sender+"@"+costDomain, to[0]+"@"+costDomain, payload)
		for _, rcpt := range to[1:] {
			msgs.also(rcpt + "@" + costDomain)
		}
		_, body := msgs.Make(i)
		status, out, _, err := cg.invoke(ctx, "POST", "/v1/messages", keys[sender], body)
		if err != nil {
			return err
		}
		if status != http.StatusAccepted && status != http.StatusOK {
			return fmt.Errorf("POST /v1/messages from %s: HTTP %d %v", sender, status, out)
		}
		mu.Lock()
		res.apiCalls++
		mu.Unlock()
		return nil
	})
	if err != nil {
		return res, err
	}
	within := 2*time.Minute + time.Duration(mix.n)*timeout
	if _, err := cg.drain(ctx, spec.batchSize, within); err != nil {
		return res, err
	}
	if mix.reader != "" {
		calls, err := readAndAck(ctx, cg, mix.reader, keys[mix.reader], mix.n)
		if err != nil {
			return res, err
		}
		res.apiCalls += calls
	}
	var byActor map[string]awscost.Usage
	if res.use, byActor, err = counter.Take(); err != nil {
		return res, fmt.Errorf("counting failed: %w", err)
	}
	res.deliver = byActor[actorDeliver]
	res.records = int(res.use.SQSMessagesSent)
	res.heat = counter.TakeHeat()
	return res, nil
}

// readAndAck has the owner of an inbox read it in pages of 100 and
// acknowledge each message, until it has seen want messages; it returns
// its requests.
func readAndAck(ctx context.Context, cg *costGateway, owner, key string, want int) (int, error) {
	calls, seen := 0, 0
	path := "/v1/inbox/" + owner + "@" + costDomain
	for seen < want {
		status, out, _, err := cg.invoke(ctx, "GET", path+"?limit=100", key, nil)
		if err != nil {
			return calls, err
		}
		calls++
		list, _ := out["messages"].([]any)
		if status != http.StatusOK || len(list) == 0 {
			return calls, fmt.Errorf("GET %s after %d of %d messages: HTTP %d %v", path, seen, want, status, out)
		}
		err = forEachN(ctx, len(list), 8, func(ctx context.Context, i int) error {
			m, _ := list[i].(map[string]any)
			id, _ := m["message_id"].(string)
			status, out, _, err := cg.invoke(ctx, "DELETE", path+"/"+id, key, nil)
			if err != nil {
				return err
			}
			if status != http.StatusOK {
				return fmt.Errorf("acknowledge %s: HTTP %d %v", id, status, out)
			}
			return nil
		})
		if err != nil {
			return calls, err
		}
		calls += len(list)
		seen += len(list)
	}
	return calls, nil
}

// shardSuffix is a sharded partition's "#<n>".
var shardSuffix = regexp.MustCompile(`#[0-9]{1,3}$`)

// keyLoad is the load of one partition key of a class, per message.
type keyLoad struct {
	class       string // the key with pool members, ids and shards as placeholders
	index       string
	write, read float64
	perMessage  bool // the partition is one message's own
	members     int  // keys the class stands for
}

// classify folds the partitions into classes whose keys carry the same
// load each, and returns one key's load per message for each class.
func classify(h awscost.Heat, n int) []keyLoad { return classifySharded(h, n, nil) }

// classifySharded is classify where shards(class) is the number of shards
// a sharded class is written to (0 if unknown): a sample of a few
// messages may not reach every shard, and the load of a key is the
// class's divided by all of them.
func classifySharded(h awscost.Heat, n int, shards func(class string) int) []keyLoad {
	type acc struct {
		index      string
		w, r       float64
		members    float64
		shards     map[string]bool
		perMessage bool
		keys       int
	}
	classes := map[string]*acc{}
	for p, l := range h {
		class := p.Key
		members := 1.0
		perMessage := false
		for _, pool := range heatPools {
			re := regexp.MustCompile(`\b` + pool.prefix + `[0-9]{` + fmt.Sprint(len(fmt.Sprint(pool.size-1))) + `}\b`)
			if re.MatchString(class) {
				class = re.ReplaceAllString(class, pool.name)
				members *= float64(pool.size)
			}
		}
		if i := strings.Index(class, "MSG#"); i >= 0 {
			class, perMessage = class[:i]+"MSG#<id>", true
		}
		// An idempotency record is in its key's partition, which only
		// that submission (and its retries) writes.
		if i := strings.Index(class, "IDK#"); i >= 0 {
			class, perMessage = class[:i]+"IDK#<key>", true
		}
		shard := ""
		// Listings are sharded: index partitions, and the base table's TO#
		// partitions (a recipient's items are its TO# entries).
		if (p.Index != "" || strings.HasPrefix(class, "TO#")) && shardSuffix.MatchString(class) {
			shard = shardSuffix.FindString(class)
			class = shardSuffix.ReplaceAllString(class, "#<shard>")
		}
		name := p.Index + " " + class
		a := classes[name]
		if a == nil {
			a = &acc{index: p.Index, members: members, shards: map[string]bool{}, perMessage: perMessage}
			classes[name] = a
		}
		a.w += l.WriteUnits
		a.r += l.ReadUnits
		a.keys++
		if shard != "" {
			a.shards[shard] = true
		}
	}
	// Shard 0 of a listing is its unsuffixed key: it joins its shards.
	for name, a := range classes {
		if sh, ok := classes[name+"#<shard>"]; ok && !a.perMessage {
			sh.w += a.w
			sh.r += a.r
			sh.keys += a.keys
			sh.shards["#0"] = true
			delete(classes, name)
		}
	}
	out := make([]keyLoad, 0, len(classes))
	for name, a := range classes {
		written := len(a.shards)
		if shards != nil && written > 0 {
			written = max(written, shards(name))
		}
		members := a.members * math.Max(1, float64(written))
		per := float64(n)
		if a.perMessage {
			// Each message is its own key: a key's load is its message's.
			members, per = float64(a.keys), 1
		}
		out = append(out, keyLoad{
			class: strings.TrimSpace(name), index: a.index, perMessage: a.perMessage, members: int(members),
			write: a.w / members / per, read: a.r / members / per,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].class < out[j].class })
	return out
}

// ceiling is the message rate at which a key reaches its partition's
// limit; +Inf for a key without load.
func (k keyLoad) ceiling() float64 {
	c := math.Inf(1)
	if k.write > 0 {
		c = partitionWriteUnits / k.write
	}
	if k.read > 0 {
		c = math.Min(c, partitionReadUnits/k.read)
	}
	return c
}

// hottest is the key that reaches its limit first; per-message
// partitions are not throughput-bound and are left out.
func hottest(keys []keyLoad) keyLoad {
	best := keyLoad{}
	bestC := math.Inf(1)
	for _, k := range keys {
		if k.perMessage {
			continue
		}
		if c := k.ceiling(); c < bestC {
			best, bestC = k, c
		}
	}
	return best
}

// accountCeiling is the message rate at which the first account-level
// quota binds, and which.
func (res heatResult) accountCeiling() (float64, string) {
	n := float64(res.mix.n)
	type bound struct {
		rate float64
		name string
	}
	var bounds []bound
	// The table and each index have their own on-demand quota.
	byIndex := map[string]awscost.Load{}
	for p, l := range res.heat {
		t := byIndex[p.Index]
		t.WriteUnits += l.WriteUnits
		t.ReadUnits += l.ReadUnits
		byIndex[p.Index] = t
	}
	for ix, l := range byIndex {
		where := "table"
		if ix != "" {
			where = "index " + ix
		}
		if l.WriteUnits > 0 {
			bounds = append(bounds, bound{tableUnitsQuota / (l.WriteUnits / n), fmt.Sprintf("DynamoDB %s writes (%s WRU/msg; quota \"Table-level write throughput limit\", %d)", where, awscost.Num(l.WriteUnits/n), tableUnitsQuota)})
		}
		if l.ReadUnits > 0 {
			bounds = append(bounds, bound{tableUnitsQuota / (l.ReadUnits / n), fmt.Sprintf("DynamoDB %s reads (%s RRU/msg; quota \"Table-level read throughput limit\", %d)", where, awscost.Num(l.ReadUnits/n), tableUnitsQuota)})
		}
	}
	api := float64(res.apiCalls) / n
	recs := float64(res.records) / n
	bounds = append(bounds,
		bound{apiGatewayRate / api, fmt.Sprintf("API Gateway (%s requests/msg; quota \"Throttle rate\", %d/s per account and region)", awscost.Num(api), apiGatewayRate)},
		bound{lambdaConcurrency / (api*apiSeconds + recs/float64(res.spec.batchSize)*deliverBatchSeconds), fmt.Sprintf("Lambda concurrency (%s api invocations at %.0f ms + %s deliver records in batches of %d at %.0f ms per msg; quota \"Concurrent executions\", %d)", awscost.Num(api), apiSeconds*1000, awscost.Num(recs), res.spec.batchSize, deliverBatchSeconds*1000, lambdaConcurrency)},
	)
	if recs > 0 {
		bounds = append(bounds, bound{float64(res.spec.maxConcurrency*res.spec.batchSize) / deliverBatchSeconds / recs, fmt.Sprintf("the deliver event source's maximum concurrency (%d × %d records per %.0f ms; the stack's DeliverMaxConcurrency)", res.spec.maxConcurrency, res.spec.batchSize, deliverBatchSeconds*1000)})
		bounds = append(bounds, bound{sqsInFlight / (recs * inFlightSeconds), fmt.Sprintf("SQS in-flight messages (%s records/msg in flight %.0f s; %d per standard queue, not adjustable)", awscost.Num(recs), inFlightSeconds, sqsInFlight)})
	}
	sort.Slice(bounds, func(i, j int) bool { return bounds[i].rate < bounds[j].rate })
	var rest []string
	for _, b := range bounds[1:] {
		rest = append(rest, fmt.Sprintf("%s %.0f/s", strings.SplitN(b.name, " (", 2)[0], b.rate))
	}
	return bounds[0].rate, bounds[0].name + "; then " + strings.Join(rest, ", ")
}

func (r *run) heatRows(res heatResult) {
	keys := classifySharded(res.heat, res.mix.n, configuredShards)
	hot := hottest(keys)
	rate := hot.ceiling()
	row := func(name string, v float64, unit string, t *report.Target, note string) {
		r.rep.Add(report.Row{Section: Heat, Name: res.mix.name + " " + name, Value: v, Unit: unit, Target: t, Note: note})
	}
	hotNote := fmt.Sprintf("%s: first key at its limit: %s (%s WRU + %s RRU per msg on one key%s)", res.mix.what, hot.class,
		awscost.Num(hot.write), awscost.Num(hot.read), membersNote(hot))
	// The next hottest keys, so that the effect of a change shows.
	sort.Slice(keys, func(i, j int) bool { return keys[i].ceiling() < keys[j].ceiling() })
	var next []string
	for _, k := range keys {
		if k.perMessage || k.class == hot.class || len(next) == 3 {
			continue
		}
		next = append(next, fmt.Sprintf("%s %.0f/s", k.class, k.ceiling()))
	}
	hotNote += "; next: " + strings.Join(next, ", ")
	switch res.mix.name[0] {
	case 'a':
		row("msg/s before a hot partition", rate, "msg/s", report.AtLeast(10000), hotNote)
	case 'b':
		row("msg/s to the hot agent before a hot partition", rate/2, "msg/s", report.AtLeast(2000), hotNote+fmt.Sprintf("; total %.0f msg/s", rate))
	case 'c':
		row("msg/s into the hot inbox before a hot partition", rate, "msg/s", report.AtLeast(1000), hotNote)
	case 'd':
		pct := 100 * 1000 / rate
		row("hottest key at 1,000 fan-outs/s", pct, "% of limit", report.AtMost(10), hotNote+fmt.Sprintf("; %.0f fan-outs/s at the limit", rate))
	}
	acct, why := res.accountCeiling()
	row("msg/s at the first account quota", acct, "msg/s", nil, why)
	var perMsg float64
	for _, k := range keys {
		if k.perMessage {
			perMsg = math.Max(perMsg, k.write)
		}
	}
	note := fmt.Sprintf("%s RRU/msg; the busiest per-message partition (MSG#<id>) takes %s WRU per message", awscost.Num(res.use.ReadUnits/float64(res.mix.n)), awscost.Num(perMsg))
	if res.records > 0 {
		per := 1 / float64(res.records)
		note += fmt.Sprintf("; the deliver function %s WRU + %s RRU per record", awscost.Num(res.deliver.WriteUnits*per), awscost.Num(res.deliver.ReadUnits*per))
	}
	row("WRU/msg", res.use.WriteUnits/float64(res.mix.n), "WRU", nil, note)
}

// configuredShards is how many shards the run's store writes a listing
// class to: INBOX# classes the inbox count, the others the listing count.
func configuredShards(class string) int {
	n := func(env string, def int) int {
		v, err := strconv.Atoi(os.Getenv(env))
		if err != nil || v <= 0 {
			return def
		}
		return v
	}
	if strings.Contains(class, "INBOX#") {
		return n("AGENTRY_DYNAMO_INBOX_SHARDS", dynamo.DefaultInboxShards)
	}
	return n("AGENTRY_DYNAMO_LISTING_SHARDS", dynamo.DefaultListingShards)
}

func membersNote(k keyLoad) string {
	if k.members <= 1 {
		return ""
	}
	return fmt.Sprintf(", one of %d keys the class stands for", k.members)
}

func (r *run) heatNotes() {
	r.rep.Note("heat: every DynamoDB unit of the AWS gateway (api handler, deliver batches, inbox reads) is booked on its partition key: the base table's pk, and each index entry's index pk; a key naming a member of a pool (%d senders s*, %d recipients r*, %d fan-out recipients f*) or a shard (#<n>) stands for each member, the mixes spreading evenly over them", heatPools[0].size, heatPools[1].size, heatPools[2].size)
	r.rep.Note("heat: per-partition limits %d WRU/s and %d RRU/s (a partition key whose sort keys grow in time is never split for heat); MSG#<id> and IDK#<key> (idempotency record) partitions take one message's units and are not throughput-bound", partitionWriteUnits, partitionReadUnits)
	shards := func(env string, def int) string {
		if v := os.Getenv(env); v != "" {
			return v
		}
		return fmt.Sprint(def)
	}
	r.rep.Note("heat: the table's listings are written to %s shards (DAY#, FROM#, TO#) and %s (INBOX#): AGENTRY_DYNAMO_LISTING_SHARDS / AGENTRY_DYNAMO_INBOX_SHARDS, else the dynamo adapter's defaults",
		shards("AGENTRY_DYNAMO_LISTING_SHARDS", dynamo.DefaultListingShards), shards("AGENTRY_DYNAMO_INBOX_SHARDS", dynamo.DefaultInboxShards))
	r.rep.Note("heat: account ceilings assume %.0f ms per api invocation and %.0f ms per deliver batch (its records in parallel) in AWS, %.0f s in flight per record; quotas are the defaults, raised through Service Quotas", apiSeconds*1000, deliverBatchSeconds*1000, inFlightSeconds)
}
