package e2e

import "time"

// settleWithin bounds every wait in these tests for something that the
// gateways, moto or the agents must do by themselves: a delivery, a
// report, a workflow step, a process becoming ready. It is wide on
// purpose. A wait ends as soon as its condition holds, so the bound costs
// nothing on a quick machine; only a machine busy with other work gets
// anywhere near it, and whether a test passes must not depend on that.
const settleWithin = 2 * time.Minute

// unhurried is a workflow timeout, in seconds, for workflows that must
// complete: an hour, which no run comes near however busy the machine
// (moto alone can take 15 s per step then), so that a test of completion
// never turns into a test of speed.
const unhurried = 3600
