package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/marin-go/marin/plugins/storage"
)

// errLeaseLost is the cancel cause of a step whose lease was taken over.
var errLeaseLost = errors.New("lease lost to another holder")

// stale reports whether a lease's heartbeat is older than StaleAfter.
func (e *executor) stale(l *Lease) bool {
	return e.now().Sub(l.Heartbeat) > e.opts.StaleAfter
}

// expired reports whether a lease may be taken over: its heartbeat is
// stale, or its holder is a process on this machine that is gone. why says
// which, for logs and dry runs.
func (e *executor) expired(l *Lease) (bool, string) {
	if e.stale(l) {
		return true, fmt.Sprintf("lease of %s is stale (heartbeat %s ago)", l.Holder, age(e.now().Sub(l.Heartbeat)))
	}
	if e.self.holderGone(l) {
		return true, fmt.Sprintf("lease holder %s (pid %d on this machine) is gone", l.Holder, l.PID)
	}
	return false, ""
}

func (e *executor) newLease() Lease {
	return Lease{
		Holder: e.holder, LeaseID: randomID(8), Heartbeat: e.now().UTC(),
		Host: e.self.Host, PID: e.self.PID, Boot: e.self.Boot, PIDNS: e.self.PIDNS, Start: e.self.Start,
	}
}

// acquire makes one attempt at the lease of the step writing outputPath. It
// returns the lease when this process now holds it, or the other holder's
// fresh lease when the step is held elsewhere (including a takeover by
// someone else in progress).
func (e *executor) acquire(ctx context.Context, outputPath string) (mine, other *Lease, err error) {
	lockURL := storage.Join(outputPath, LockFile)
	// The lock can vanish between a failed create and the read (its holder
	// released it); a few rounds settle that.
	for round := 0; round < 8; round++ {
		l := e.newLease()
		data, err := json.Marshal(l)
		if err != nil {
			return nil, nil, err
		}
		held.Store(l.LeaseID, true) // before it can be seen
		created, err := storage.CreateIfNotExist(ctx, lockURL, data)
		if err != nil {
			held.Delete(l.LeaseID)
			return nil, nil, fmt.Errorf("take lease %s: %w", lockURL, err)
		}
		if created {
			return &l, nil, nil
		}
		held.Delete(l.LeaseID)
		cur, ver, err := readLeaseVersion(ctx, outputPath)
		why := "lease file is unreadable"
		switch {
		case errors.Is(err, storage.ErrNotExist):
			continue
		case errors.Is(err, errCorruptLease):
			e.log.Warn().Str("path", outputPath).Err(err).Msg("lease file is unreadable; treating it as stale")
		case err != nil:
			return nil, nil, fmt.Errorf("read lease %s: %w", lockURL, err)
		default:
			var gone bool
			if gone, why = e.expired(cur); !gone {
				return nil, cur, nil
			}
		}
		won, err := e.claimSteal(ctx, outputPath, cur)
		if err != nil {
			return nil, nil, err
		}
		if !won {
			// Another taker is replacing this stale lease right now.
			return nil, cur, nil
		}
		e.log.Warn().Str("path", outputPath).Str("stale_holder", cur.Holder).
			Time("stale_heartbeat", cur.Heartbeat).Str("reason", why).Msg("taking over lease")
		l = e.newLease()
		if data, err = json.Marshal(l); err != nil {
			return nil, nil, err
		}
		// Replace the stale lock only if it is still the one we read: a
		// holder that came back to life and refreshed it, or a taker whose
		// steal marker went stale under us, changed it, and then it is
		// theirs.
		held.Store(l.LeaseID, true) // before it can be seen
		replaced, err := storage.ReplaceIfVersion(ctx, lockURL, data, ver)
		if err != nil {
			held.Delete(l.LeaseID)
			return nil, nil, fmt.Errorf("take over lease %s: %w", lockURL, err)
		}
		if !replaced {
			held.Delete(l.LeaseID)
			back, err := readLease(ctx, outputPath)
			if errors.Is(err, storage.ErrNotExist) {
				continue
			}
			if err != nil && !errors.Is(err, errCorruptLease) {
				return nil, nil, fmt.Errorf("read back lease %s: %w", lockURL, err)
			}
			return nil, back, nil
		}
		return &l, nil, nil
	}
	return nil, nil, fmt.Errorf("take lease %s: the lock kept changing; giving up this round", lockURL)
}

// claimSteal lets exactly one taker replace a stale lease: the one that
// creates its steal marker. Should that taker die before rewriting the lock,
// its marker goes stale too and the next taker claims a numbered successor.
func (e *executor) claimSteal(ctx context.Context, outputPath string, stale *Lease) (bool, error) {
	data, err := json.Marshal(stealMarker{Holder: e.holder, Time: e.now().UTC()})
	if err != nil {
		return false, err
	}
	for k := 1; k <= 64; k++ {
		name := StealPrefix + stale.LeaseID
		if k > 1 {
			name += "." + strconv.Itoa(k)
		}
		u := storage.Join(outputPath, name)
		created, err := storage.CreateIfNotExist(ctx, u, data)
		if err != nil {
			return false, fmt.Errorf("claim stale lease %s: %w", u, err)
		}
		if created {
			return true, nil
		}
		raw, err := storage.ReadAll(ctx, u)
		if errors.Is(err, storage.ErrNotExist) {
			// Released along with the lease; the caller starts over.
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read steal marker %s: %w", u, err)
		}
		var m stealMarker
		if json.Unmarshal(raw, &m) == nil && e.now().Sub(m.Time) <= e.opts.StaleAfter {
			return false, nil
		}
	}
	return false, fmt.Errorf("claim stale lease under %s: too many abandoned takeovers", outputPath)
}

// heartbeat keeps a held lease fresh until ctx ends. It calls lost (once)
// when the lease was taken over or could not be refreshed for StaleAfter,
// after which anyone may take it.
func (e *executor) heartbeat(ctx context.Context, outputPath string, mine Lease, lost func()) {
	lockURL := storage.Join(outputPath, LockFile)
	t := time.NewTicker(e.opts.Heartbeat)
	defer t.Stop()
	lastOK := e.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur, ver, err := readLeaseVersion(ctx, outputPath)
		if ctx.Err() != nil {
			return
		}
		if err == nil && cur.LeaseID != mine.LeaseID || errors.Is(err, storage.ErrNotExist) || errors.Is(err, errCorruptLease) {
			holder := "nobody"
			if cur != nil && cur.Holder != "" {
				holder = cur.Holder
			}
			e.log.Error().Str("path", outputPath).Str("new_holder", holder).Msg("lease was taken over; stopping the step")
			lost()
			return
		}
		if err == nil {
			// Refresh only the lock just read as ours (a conditional
			// overwrite on its version): a taker that replaced it in
			// between is never overwritten by a stale holder.
			mine.Heartbeat = e.now().UTC()
			var data []byte
			if data, err = json.Marshal(mine); err == nil {
				var ok bool
				if ok, err = storage.ReplaceIfVersion(ctx, lockURL, data, ver); err == nil && !ok {
					if ctx.Err() != nil {
						return
					}
					e.log.Error().Str("path", outputPath).Msg("lease was taken over during its refresh; stopping the step")
					lost()
					return
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			e.log.Warn().Str("path", outputPath).Err(err).Msg("lease heartbeat failed")
			if e.now().Sub(lastOK) > e.opts.StaleAfter {
				e.log.Error().Str("path", outputPath).Msg("lease could not be refreshed within the stale period; stopping the step")
				lost()
				return
			}
			continue
		}
		lastOK = e.now()
	}
}

// startHeartbeat runs heartbeat in the background; the returned stop waits
// for it so that no refresh can land after the lease is released.
func (e *executor) startHeartbeat(ctx context.Context, outputPath string, mine Lease, lost func()) (stop func()) {
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.heartbeat(hctx, outputPath, mine, lost)
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// holds reports whether the lock still carries this lease.
func (e *executor) holds(ctx context.Context, outputPath string, mine Lease) (bool, error) {
	cur, err := readLease(ctx, outputPath)
	if errors.Is(err, storage.ErrNotExist) || errors.Is(err, errCorruptLease) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return cur.LeaseID == mine.LeaseID, nil
}

// release gives the lease up: steal markers first, then the lock, and only
// while the lock is still ours, so a lost lease never deletes its taker's.
// Whatever happens, this process no longer counts itself the holder: a lock
// left behind by a failed delete is taken over at once by the next taker on
// this machine.
//
// A failed attempt (a timeout on an object store) is retried a few times: a
// lock left behind on a step that succeeded would stay there, since nobody
// takes over a finished step's lease.
func (e *executor) release(ctx context.Context, outputPath string, mine Lease) error {
	defer held.Delete(mine.LeaseID)
	var err error
	for attempt := 0; attempt < releaseAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Duration(attempt) * releaseBackoff):
			}
		}
		if err = e.releaseOnce(ctx, outputPath, mine); err == nil {
			return nil
		}
	}
	return err
}

// Retries of release.
var (
	releaseAttempts = 3
	releaseBackoff  = 200 * time.Millisecond
)

func (e *executor) releaseOnce(ctx context.Context, outputPath string, mine Lease) error {
	ok, err := e.holds(ctx, outputPath, mine)
	if err != nil {
		return fmt.Errorf("release lease of %s: %w", outputPath, err)
	}
	if !ok {
		return nil
	}
	markers, err := storage.List(ctx, storage.Join(outputPath, StealPrefix), "")
	if err != nil {
		return fmt.Errorf("release lease of %s: %w", outputPath, err)
	}
	for _, m := range markers {
		if err := storage.Delete(ctx, m.URL); err != nil {
			return fmt.Errorf("release lease of %s: %w", outputPath, err)
		}
	}
	if err := storage.Delete(ctx, storage.Join(outputPath, LockFile)); err != nil {
		return fmt.Errorf("release lease of %s: %w", outputPath, err)
	}
	return nil
}
