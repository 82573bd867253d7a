package ses

import "github.com/aws/aws-lambda-go/events"

// Verdict statuses SES gives received mail.
const (
	VerdictPass            = "PASS"
	VerdictFail            = "FAIL"
	VerdictGray            = "GRAY"
	VerdictProcessingFail  = "PROCESSING_FAILED"
	VerdictDisabled        = "DISABLED"
	DMARCPolicyReject      = "REJECT"
	DMARCPolicyQuarantine  = "QUARANTINE"
	DMARCPolicyNone        = "NONE"
	maxVerdictStatusLength = 32
)

// Verdicts are SES's checks of one received email, for the bridge to
// judge: each is one of the Verdict* statuses ("" when SES gave none).
type Verdicts struct {
	SPF, DKIM, DMARC, Spam, Virus string
	// DMARCPolicy is the sender domain's published policy (REJECT,
	// QUARANTINE, NONE), set only when DMARC failed.
	DMARCPolicy string
}

// ReceiptVerdicts reads the verdicts of an SES receipt.
func ReceiptVerdicts(rec events.SimpleEmailReceipt) Verdicts {
	return Verdicts{
		SPF:         clean(rec.SPFVerdict.Status, maxVerdictStatusLength),
		DKIM:        clean(rec.DKIMVerdict.Status, maxVerdictStatusLength),
		DMARC:       clean(rec.DMARCVerdict.Status, maxVerdictStatusLength),
		Spam:        clean(rec.SpamVerdict.Status, maxVerdictStatusLength),
		Virus:       clean(rec.VirusVerdict.Status, maxVerdictStatusLength),
		DMARCPolicy: clean(rec.DMARCPolicy, maxVerdictStatusLength),
	}
}

// Authenticated reports whether the From domain was proven: DMARC passed
// (which needs an aligned SPF or DKIM pass).
func (v Verdicts) Authenticated() bool { return v.DMARC == VerdictPass }

// Clean reports whether SES found neither spam nor a virus.
func (v Verdicts) Clean() bool { return v.Spam == VerdictPass && v.Virus == VerdictPass }
