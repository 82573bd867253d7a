package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/agentry/agentry/internal/adapter/boltimport"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/runtime/localgw"
)

const storeUsage = `usage:
  agentry store check          read every record of the stopped gateway's store; exit 1 naming
                               what is damaged
  agentry store backup DIR     write a consistent copy of the store to DIR (which must not
                               exist): through the running gateway, or directly when it is stopped
  agentry store restore DIR    with the gateway stopped, put the backup in DIR in place of the
                               store (the store it replaces is kept beside it)

the data directory is AGENTRY_DATA_DIR, as for agentry serve.
`

// storeCommand runs `agentry store …`.
func storeCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, storeUsage)
		return errors.New("store: no subcommand")
	}
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	// Opening the data directory with the Pebble store would import the
	// earlier engine's files and set them aside, possibly under an earlier
	// gateway that still runs on them; the import is the gateway's start.
	if old, err := boltimport.Exists(cfg.DataDir); err != nil {
		return err
	} else if old {
		return fmt.Errorf("store: %s holds the earlier bbolt engine's files, not imported yet; these commands are for "+
			"the Pebble store (start the gateway once, agentry serve, to import them)", cfg.DataDir)
	}
	switch {
	case args[0] == "check" && len(args) == 1:
		return storeCheck(cfg.DataDir, stdout)
	case args[0] == "backup" && len(args) == 2:
		return storeBackup(cfg.DataDir, args[1], stdout)
	case args[0] == "restore" && len(args) == 2:
		return storeRestore(cfg.DataDir, args[1], stdout)
	}
	fmt.Fprint(stderr, storeUsage)
	return fmt.Errorf("store: bad arguments %q", args)
}

// gatewayRunning reports whether a gateway answers on the data
// directory's control socket.
func gatewayRunning(dataDir string) bool {
	return localgw.Running(context.Background(), dataDir)
}

func storeCheck(dataDir string, stdout io.Writer) error {
	if gatewayRunning(dataDir) {
		return errors.New("store check: a gateway is running on this data directory; stop it first")
	}
	rep, err := pebblestore.Check(dataDir)
	if rep != nil {
		for name, n := range rep.Records {
			fmt.Fprintf(stdout, "%-14s %d\n", name, n)
		}
		for _, d := range rep.Damaged {
			fmt.Fprintln(stdout, "damaged:", d)
		}
	}
	if err != nil {
		return fmt.Errorf("store check: %w; restore the last backup with `agentry store restore`", err)
	}
	fmt.Fprintln(stdout, "store check: no damage found")
	return nil
}

func storeBackup(dataDir, dest string, stdout io.Writer) error {
	dest, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	ctx := context.Background()
	err = localgw.RequestBackup(ctx, dataDir, dest)
	if errors.Is(err, localgw.ErrNoGateway) {
		err = offlineBackup(ctx, dataDir, dest)
	}
	if err != nil {
		return fmt.Errorf("store backup: %w", err)
	}
	fmt.Fprintln(stdout, "backup written to", dest)
	return nil
}

// offlineBackup backs up the store of a stopped gateway.
func offlineBackup(ctx context.Context, dataDir, dest string) error {
	db, err := pebblestore.Open(pebblestore.Options{Dir: dataDir})
	if err != nil {
		return err
	}
	err = db.Backup(ctx, dest)
	return errors.Join(err, db.Close())
}

// storeRestore puts the backup in src in place of the store; the store
// it replaces is renamed, not deleted.
func storeRestore(dataDir, src string, stdout io.Writer) error {
	if gatewayRunning(dataDir) {
		return errors.New("store restore: a gateway is running on this data directory; stop it first")
	}
	store := filepath.Join(dataDir, pebblestore.StoreDir)
	staged := store + ".restoring"
	if err := os.RemoveAll(staged); err != nil {
		return fmt.Errorf("store restore: %w", err)
	}
	if err := copyDir(src, staged); err != nil {
		return fmt.Errorf("store restore: copy %s: %w", src, err)
	}
	kept := ""
	if _, err := os.Stat(store); err == nil {
		kept = store + ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(store, kept); err != nil {
			return fmt.Errorf("store restore: %w", err)
		}
	}
	if err := os.Rename(staged, store); err != nil {
		return fmt.Errorf("store restore: %w", err)
	}
	if _, err := pebblestore.Check(dataDir); err != nil {
		return fmt.Errorf("store restore: the restored store does not check: %w", err)
	}
	if kept != "" {
		fmt.Fprintln(stdout, "the replaced store is kept as", kept)
	}
	fmt.Fprintln(stdout, "store restored from", src)
	return nil
}

// copyDir copies the regular files of src (a backup is flat) into a new
// directory dst, syncing each.
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s: not a file; is this a backup?", filepath.Join(src, e.Name()))
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
