package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// maxHealthTimeout bounds -timeout: a probe that hangs longer than the
// container runtime's own timeout helps no one.
const maxHealthTimeout = time.Minute

// runHealthcheck is the container's HEALTHCHECK: the runtime image has no
// shell and no curl, so the binary probes itself.
func runHealthcheck(inv *invocation, args []string) error {
	fs := inv.flagSet()
	target := fs.String("url", "", "URL to GET (default http://127.0.0.1:<port of AGENTRY_ADDR>/readyz)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long (at most 1m)")
	if _, err := inv.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *timeout <= 0 || *timeout > maxHealthTimeout {
		return usagef("-timeout must be positive and at most %s", maxHealthTimeout)
	}
	if *target == "" {
		u, err := localReadyURL(os.Getenv("AGENTRY_ADDR"))
		if err != nil {
			return usagef("%v", err)
		}
		*target = u
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *target, nil)
	if err != nil {
		return usagef("-url: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s answered %d", *target, resp.StatusCode)
	}
	fmt.Fprintln(inv.stdout, "ready")
	return nil
}

// localReadyURL is /readyz of a gateway listening on addr (AGENTRY_ADDR,
// default 127.0.0.1:8080), reached over loopback when it listens on every
// interface.
func localReadyURL(addr string) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", errors.New("AGENTRY_ADDR is not host:port; give -url")
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}
