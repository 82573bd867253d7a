package dkim_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/adapter/dkim"
)

const mail = "From: Orders Desk <orders@supplier.example>\r\n" +
	"To: reply+abc@retailer.example\r\n" +
	"Subject: Re: [AMTP] Purchase order\r\n" +
	"Date: Thu, 14 Aug 2025 12:45:00 +0200\r\n" +
	"Message-ID: <5f3c2a1b-reply@supplier.example>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Confirmed, we ship on Monday.\r\n"

type key struct {
	signer crypto.Signer
	record string // the DKIM TXT record
}

func ed25519Key(t *testing.T) key {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return key{priv, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}
}

func rsaKey(t *testing.T) key {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	require.NoError(t, err)
	return key{priv, "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)}
}

func sign(t *testing.T, raw, domain, selector string, k key) string {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, msgauth.Sign(&out, strings.NewReader(raw), &msgauth.SignOptions{
		Domain: domain, Selector: selector, Signer: k.signer,
		HeaderCanonicalization: msgauth.CanonicalizationRelaxed, BodyCanonicalization: msgauth.CanonicalizationRelaxed,
	}))
	return out.String()
}

func TestVerify(t *testing.T) {
	dnsServer := dnstest.Start(t)
	ed, rs, esp := ed25519Key(t), rsaKey(t), ed25519Key(t)
	dnsServer.SetTXT("ed._domainkey.supplier.example", 300, ed.record)
	dnsServer.SetTXT("rsa._domainkey.supplier.example", 300, rs.record) // longer than 255: several strings
	dnsServer.SetTXT("esp._domainkey.mailer.example", 300, esp.record)
	dnsServer.SetTXT("broken._domainkey.supplier.example", 300, "v=DKIM1; k=rsa; p=bm90IGEga2V5")
	dnsServer.SetRcode("down._domainkey.supplier.example", dns.RcodeServerFailure)
	verifier := dkim.NewVerifier(dkim.DNSLookup(dnsServer.Addr(), time.Second))

	signedEd := sign(t, mail, "supplier.example", "ed", ed)
	tooMany := mail
	for i := range dkim.MaxSignatures + 2 {
		tooMany = sign(t, tooMany, fmt.Sprintf("d%d.example", i), "ed", ed)
	}
	cases := []struct {
		name    string
		raw     string
		want    dkim.Result
		aligned bool
	}{
		{"ed25519", signedEd, dkim.Result{Passed: []string{"supplier.example"}}, true},
		{"rsa-sha256", sign(t, mail, "Supplier.Example", "rsa", rs), dkim.Result{Passed: []string{"supplier.example"}}, true},
		{"author and mailing service", sign(t, signedEd, "mailer.example", "esp", esp), dkim.Result{Passed: []string{"mailer.example", "supplier.example"}}, true},
		{"only a third party signs", sign(t, mail, "mailer.example", "esp", esp), dkim.Result{Passed: []string{"mailer.example"}}, false},
		{"body changed in transit", strings.Replace(signedEd, "Monday", "Friday", 1), dkim.Result{Failed: []string{"supplier.example"}}, false},
		{"From changed in transit", strings.Replace(signedEd, "orders@supplier.example", "ceo@supplier.example", 1), dkim.Result{Failed: []string{"supplier.example"}}, false},
		{"signed with another key", sign(t, mail, "supplier.example", "ed", esp), dkim.Result{Failed: []string{"supplier.example"}}, false},
		{"no key published", sign(t, mail, "supplier.example", "missing", ed), dkim.Result{Failed: []string{"supplier.example"}}, false},
		{"an unusable key", sign(t, mail, "supplier.example", "broken", ed), dkim.Result{Failed: []string{"supplier.example"}}, false},
		{"DNS failing", sign(t, mail, "supplier.example", "down", ed), dkim.Result{TempFailed: []string{"supplier.example"}}, false},
		{"unsigned", mail, dkim.Result{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := verifier.Verify(context.Background(), []byte(c.raw))
			require.NoError(t, err)
			assert.ElementsMatch(t, c.want.Passed, got.Passed)
			assert.ElementsMatch(t, c.want.Failed, got.Failed)
			assert.ElementsMatch(t, c.want.TempFailed, got.TempFailed)
			assert.Equal(t, c.aligned, got.Aligned("supplier.example"))
			domains, err := verifier.VerifiedDomains(context.Background(), []byte(c.raw))
			if len(c.want.TempFailed) > 0 && len(c.want.Passed) == 0 {
				// Nothing proven, something not checkable now: the
				// sending server is to try again, not the mail judged.
				require.ErrorIs(t, err, dkim.ErrTemporary)
				return
			}
			require.NoError(t, err)
			assert.ElementsMatch(t, c.want.Passed, domains)
		})
	}

	t.Run("at most MaxSignatures are checked", func(t *testing.T) {
		before := 0
		for i := range dkim.MaxSignatures + 2 {
			before += dnsServer.Queries(fmt.Sprintf("ed._domainkey.d%d.example", i), dns.TypeTXT)
		}
		got, err := verifier.Verify(context.Background(), []byte(tooMany))
		require.NoError(t, err)
		assert.Len(t, append(got.Failed, got.Passed...), dkim.MaxSignatures)
		after := 0
		for i := range dkim.MaxSignatures + 2 {
			after += dnsServer.Queries(fmt.Sprintf("ed._domainkey.d%d.example", i), dns.TypeTXT)
		}
		assert.Equal(t, dkim.MaxSignatures, after-before, "one lookup per checked signature")
	})
}

func TestAligned(t *testing.T) {
	r := dkim.Result{Passed: []string{"supplier.example", "com"}}
	assert.True(t, r.Aligned("supplier.example"))
	assert.True(t, r.Aligned("mail.Supplier.example."))
	assert.False(t, r.Aligned("evil-supplier.example"))
	assert.False(t, r.Aligned("other.com"), "a bare TLD never aligns")
	assert.False(t, dkim.Result{Failed: []string{"supplier.example"}}.Aligned("supplier.example"))
}

// TestVerifyGarbage: what is not a signed message proves nothing.
func TestVerifyGarbage(t *testing.T) {
	verifier := dkim.NewVerifier(func(context.Context, string) ([]string, error) { return nil, nil })
	for _, raw := range []string{"", "not a header\r\n\r\nbody", "DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; b=; bh=\r\n\r\n"} {
		got, err := verifier.Verify(context.Background(), []byte(raw))
		if err == nil {
			assert.Empty(t, got.Passed, "%q", raw)
		}
	}
}

// TestVerifyWithNetResolver: the standard library resolver is a lookup
// too.
func TestVerifyWithNetResolver(t *testing.T) {
	dnsServer := dnstest.Start(t)
	ed := ed25519Key(t)
	dnsServer.SetTXT("ed._domainkey.supplier.example", 300, ed.record)
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, dnsServer.Addr())
	}}
	got, err := dkim.NewVerifier(resolver.LookupTXT).Verify(context.Background(), []byte(sign(t, mail, "supplier.example", "ed", ed)))
	require.NoError(t, err)
	assert.Equal(t, []string{"supplier.example"}, got.Passed)
}
