package localgw

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ControlSocket is the name, inside the data directory, of the unix
// socket through which `agentry store backup` reaches a running gateway's
// store. The data directory is 0700 and the socket 0600: only the
// gateway's user can use it.
const ControlSocket = "control.sock"

// controlTimeout bounds one control request (a backup hard-links the
// tables and copies the log, so it takes about as long as the log is big).
const controlTimeout = 10 * time.Minute

// backuper is a store that can back itself up while it serves.
type backuper interface {
	Backup(ctx context.Context, dest string) error
}

// serveControl answers control requests until ctx is done. A request is
// one line, "backup <absolute dir>" or "ping", answered by one line:
// "ok", or "error <reason>".
func (g *Gateway) serveControl(ctx context.Context) {
	path := filepath.Join(g.Config.DataDir, ControlSocket)
	// A socket left by a gateway that was killed would keep Listen from
	// binding; this process holds the store's lock, so no other gateway
	// is using it.
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		g.log.Warn("no control socket: `agentry store backup` cannot reach this gateway", "err", err)
		return
	}
	if err := os.Chmod(path, 0o600); err != nil {
		g.log.Warn("control socket", "err", err)
	}
	var wg sync.WaitGroup
	go func() {
		<-ctx.Done()
		_ = l.Close()
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.control(ctx, conn)
		}()
	}
	wg.Wait()
	_ = os.Remove(path)
}

func (g *Gateway) control(ctx context.Context, conn net.Conn) {
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(controlTimeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return
	}
	cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	err = g.runControl(ctx, cmd, arg)
	if err != nil {
		g.log.Warn("control request failed", "command", cmd, "err", err)
		fmt.Fprintf(conn, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	g.log.Info("control request done", "command", cmd, "arg", arg)
	fmt.Fprintln(conn, "ok")
}

func (g *Gateway) runControl(ctx context.Context, cmd, arg string) error {
	switch cmd {
	case "ping":
		return nil
	case "backup":
		b, ok := g.DB.(backuper)
		if !ok {
			return errors.New("this store engine has no online backup")
		}
		if !filepath.IsAbs(arg) {
			return fmt.Errorf("backup directory %q is not absolute", arg)
		}
		return b.Backup(ctx, arg)
	}
	return fmt.Errorf("unknown control command %q", cmd)
}

// RequestBackup asks the gateway running on dataDir for a backup into
// dest. It returns ErrNoGateway when no gateway answers there.
func RequestBackup(ctx context.Context, dataDir, dest string) error {
	return request(ctx, dataDir, "backup "+dest)
}

// Running reports whether a gateway serves dataDir.
func Running(ctx context.Context, dataDir string) bool {
	return !errors.Is(request(ctx, dataDir, "ping"), ErrNoGateway)
}

func request(ctx context.Context, dataDir, line string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(dataDir, ControlSocket))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoGateway, err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(controlTimeout))
	if _, err := fmt.Fprintln(conn, line); err != nil {
		return fmt.Errorf("control request: %w", err)
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("control request: %w", err)
	}
	answer = strings.TrimSpace(answer)
	if answer != "ok" {
		return fmt.Errorf("the gateway answered: %s", strings.TrimPrefix(answer, "error "))
	}
	return nil
}

// ErrNoGateway: no gateway is serving the data directory.
var ErrNoGateway = errors.New("no gateway running on the data directory")
