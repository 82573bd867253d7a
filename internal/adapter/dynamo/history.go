package dynamo

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// stHistory is the status map's field of the recipient's attempt history
// (gateway.RecipientStatus.History), absent when empty: one string, each
// entry "<unix ms>,<outcome>,<attempt>,<error code>", entries joined by
// ";" — about 48 bytes an entry where JSON took 107, which counts, since
// every byte of a recipient item is paid for at each of its updates.
const stHistory = "h"

func putHistory(m item, h []gateway.AttemptRecord) {
	if len(h) == 0 {
		return
	}
	var b strings.Builder
	for i, e := range h {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(strconv.FormatInt(e.At.UnixMilli(), 10))
		b.WriteByte(',')
		b.WriteString(historyField(e.Outcome))
		b.WriteByte(',')
		b.WriteString(strconv.Itoa(e.Attempt))
		b.WriteByte(',')
		b.WriteString(historyField(e.ErrorCode))
	}
	m[stHistory] = str(b.String())
}

// historyField keeps the separators out of a field: outcomes and AMTP
// error codes never hold them, so nothing real is lost.
func historyField(s string) string {
	return strings.NewReplacer(",", "_", ";", "_").Replace(s)
}

func getHistory(m item) ([]gateway.AttemptRecord, error) {
	v := getStr(m, stHistory)
	if v == "" {
		return nil, nil
	}
	entries := strings.Split(v, ";")
	h := make([]gateway.AttemptRecord, 0, len(entries))
	for _, e := range entries {
		f := strings.Split(e, ",")
		if len(f) != 4 {
			return nil, fmt.Errorf("attempt history entry %q", e)
		}
		ms, err1 := strconv.ParseInt(f[0], 10, 64)
		n, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("attempt history entry %q", e)
		}
		h = append(h, gateway.AttemptRecord{At: time.UnixMilli(ms).UTC(), Outcome: f[1], Attempt: n, ErrorCode: f[3]})
	}
	return h, nil
}
