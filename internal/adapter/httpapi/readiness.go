package httpapi

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// ReadyCheck is one dependency /readyz checks besides the store.
type ReadyCheck struct {
	// Name is what a 503 lists in details.failed ("queue"): a fixed word
	// of the runtime's, never anything read from the dependency.
	Name  string
	Check func(ctx context.Context) error
}

// readyTimeout bounds each check: a hung dependency is reported as
// failed instead of holding the probe.
const readyTimeout = 2 * time.Second

// ready runs the store check (Options.Ready) and Options.ReadyChecks at
// once and answers 503 TEMPORARY_FAILURE naming the ones that failed, in
// their order, in details.failed. What failed inside is logged only: a
// file path or a driver's message is nothing a prober should read.
func (h *Handler) ready(w http.ResponseWriter, r *http.Request) {
	checks := h.opt.ReadyChecks
	if h.opt.Ready != nil {
		checks = append([]ReadyCheck{{Name: "store", Check: h.opt.Ready}}, checks...)
	}
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
			defer cancel()
			errs[i] = c.Check(ctx)
		}()
	}
	wg.Wait()
	var failed []string
	for i, err := range errs {
		if err != nil {
			h.log.Warn("not ready", "check", checks[i].Name, "err", err)
			failed = append(failed, checks[i].Name)
		}
	}
	if len(failed) > 0 {
		h.writeError(w, r, amtp.Errorf(amtp.CodeTemporaryFailure, "not ready: %s unavailable", strings.Join(failed, ", ")).
			WithDetail("failed", failed))
		return
	}
	h.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ready"})
}

// refuse answers a message submission with err, as writeError does, and
// tells Options.Refused the code the caller is given.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if h.opt.Refused != nil {
		code := amtp.CodeTemporaryFailure // what writeError answers for a failure of ours
		if e, ok := amtp.AsError(err); ok {
			code = e.Code
		}
		h.opt.Refused(r.Context(), code)
	}
	h.writeError(w, r, err)
}
