// Package slurmtest lets tests find the Slurm cluster they run against:
// scripts/test starts a single-node one (scripts/slurm-cluster), exports its
// SLURM_CONF and sets MARIN_REQUIRE_SLURM=1.
package slurmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Require skips t when no Slurm cluster answers sinfo, or fails it when
// MARIN_REQUIRE_SLURM=1 says one must. -short skips too.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a Slurm cluster (skipped with -short)")
	}
	if err := ping(); err != nil {
		if os.Getenv("MARIN_REQUIRE_SLURM") == "1" {
			t.Fatalf("MARIN_REQUIRE_SLURM=1 but no Slurm cluster answers: %v", err)
		}
		t.Skipf("no Slurm cluster answers (%v); scripts/test starts one: scripts/slurm-cluster start DIR, then export SLURM_CONF=DIR/slurm.conf", err)
	}
}

func ping() error {
	if _, err := exec.LookPath("sinfo"); err != nil {
		return errors.New("sinfo is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sinfo", "--noheader", "--format=%t").CombinedOutput()
	if err != nil {
		return fmt.Errorf("sinfo: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if strings.TrimSpace(string(out)) == "" {
		return errors.New("sinfo lists no nodes")
	}
	return nil
}
