package e2e

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/kit/awstest"
)

// Two `agentry serve` processes on the AWS backend, different domains, one
// moto: each bootstraps its own resources (named from its domain) and they
// exchange mail through DNS discovery like any two gateways.
func TestTwoAWSBackedBinariesSideBySide(t *testing.T) {
	bin := buildAgentry(t)
	dns := dnstest.Start(t)
	aAddr, bAddr := freePort(t), freePort(t)
	dns.SetTXT("_amtp.a.test", 60, "v=amtp1;gateway=http://"+aAddr)
	dns.SetTXT("_amtp.b.test", 60, "v=amtp1;gateway=http://"+bAddr)
	common := append(awstest.Env(t),
		"AGENTRY_BACKEND=aws", "AGENTRY_AWS_BOOTSTRAP=1", "AGENTRY_ADMIN_KEY="+adminKey,
		"AGENTRY_DNS_SERVER="+dns.Addr(), "AGENTRY_ALLOW_INSECURE=1", "AGENTRY_LOG_LEVEL=warn",
		"AGENTRY_RETRY_BASE=200ms", "AGENTRY_RETRY_MAX=1s")
	aKey, _ := publishKey(t, dns, "a.test")
	bKey, _ := publishKey(t, dns, "b.test")
	a := startBinary(t, bin, append(common, "AGENTRY_DOMAIN=a.test", "AGENTRY_SIGNING_KEY="+aKey), aAddr)
	b := startBinary(t, bin, append(common, "AGENTRY_DOMAIN=b.test", "AGENTRY_SIGNING_KEY="+bKey), bAddr)

	reg := func(url, name string) string {
		st, out := call(t, "POST", url+"/v1/admin/agents", adminKey, map[string]any{"address": name, "delivery_mode": "pull"})
		require.Equal(t, http.StatusCreated, st, "%v", out)
		return out["api_key"].(string)
	}
	alice, bob := reg(a.url, "alice"), reg(b.url, "bob")
	st, out := call(t, "POST", a.url+"/v1/messages", alice, msg("alice@a.test", []string{"bob@b.test"}, map[string]any{"via": "sqs"}))
	require.Equal(t, http.StatusAccepted, st, "%v", out)
	id := out["message_id"].(string)

	x := &gw{t: t, domain: "a.test", url: a.url}
	x.waitStatus(alice, id, "bob@b.test", "delivered", settleWithin)
	y := &gw{t: t, domain: "b.test", url: b.url}
	got := y.waitInbox(bob, "bob@b.test", 1, settleWithin)
	assert.Equal(t, id, got[0]["message_id"])
	// Each gateway keeps its own records: a.test's agent is unknown at b.test.
	st, _ = call(t, "GET", b.url+"/v1/inbox/alice@a.test", alice, nil)
	assert.Equal(t, http.StatusUnauthorized, st)
}
