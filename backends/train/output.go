package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/plugins/storage"
)

// A train step whose output is a storage URL (gs://, s3://, …) trains in a
// local scratch directory (Job.Stage) and publishes each part as it is
// complete: a checkpoint's files with config.json and then metadata.json
// last (the commit marker ListCheckpoints and resumes look for), an
// export's with config.json last, metrics.jsonl whenever a checkpoint is
// published and once a minute. Local copies of published checkpoints and
// exports are removed, so scratch holds about one checkpoint. A rerun
// fetches the newest complete checkpoint and metrics.jsonl back and
// continues; a checkpoint cut off mid-upload has no metadata.json and is
// skipped like a local one a crash left behind.

// metricsPublishEvery bounds how stale a remote metrics.jsonl gets.
const metricsPublishEvery = time.Minute

// remote reports whether the job's output is a storage URL.
func (j *Job) remote() bool { return j.Stage != nil && j.Stage.Remote() }

// checkpointMarkers are published last, in this order.
var checkpointMarkers = []string{weights.ConfigName, MetadataFile}

// fetchResume brings what a rerun resumes from into Out: metrics.jsonl,
// the newest complete checkpoint, and the metadata of older complete ones
// (so a refusal to resume can name the one to fall back to).
func (j *Job) fetchResume(ctx context.Context) error {
	if !j.remote() {
		return nil
	}
	if _, err := j.Stage.Fetch(ctx, MetricsName); err != nil {
		return err
	}
	steps, err := weights.StepURLs(ctx, j.Stage.URLOf("checkpoints"))
	if err != nil {
		return err
	}
	newest := true
	for i := len(steps) - 1; i >= 0; i-- {
		rel := "checkpoints/" + weights.StepName(steps[i].Step)
		ok, err := storage.Exists(ctx, j.Stage.URLOf(rel+"/"+MetadataFile))
		if err != nil {
			return err
		}
		if !ok {
			j.logf("warn", "skipping incomplete checkpoint %s (no %s: its upload was cut off)", j.Stage.URLOf(rel), MetadataFile)
			continue
		}
		if newest {
			j.logf("info", "fetching checkpoint %s", j.Stage.URLOf(rel))
			if _, err := j.Stage.Fetch(ctx, rel); err != nil {
				return err
			}
			newest = false
			continue
		}
		if _, err := j.Stage.Fetch(ctx, rel+"/"+MetadataFile); err != nil {
			return err
		}
	}
	return nil
}

// publishCheckpoint uploads checkpoint dir (under Out/checkpoints), prunes
// what it supersedes remotely and drops the local copies.
func (j *Job) publishCheckpoint(ctx context.Context, dir string, done int64) error {
	if !j.remote() {
		return nil
	}
	rel := "checkpoints/" + filepath.Base(dir)
	if err := j.Stage.Publish(ctx, rel, checkpointMarkers...); err != nil {
		return fmt.Errorf("publish checkpoint: %w", err)
	}
	if err := os.RemoveAll(j.Stage.Path("checkpoints")); err != nil {
		return err
	}
	if err := j.publishMetrics(ctx); err != nil {
		return err
	}
	return j.pruneRemote(ctx, done)
}

// pruneRemote is PruneTemporary for the published checkpoints: temporary
// ones older than keep go, and so do incomplete ones (cut-off uploads).
func (j *Job) pruneRemote(ctx context.Context, keep int64) error {
	steps, err := weights.StepURLs(ctx, j.Stage.URLOf("checkpoints"))
	if err != nil {
		return err
	}
	var errs []string
	for _, s := range steps {
		if s.Step >= keep {
			continue
		}
		raw, err := storage.ReadAll(ctx, storage.Join(s.Dir, MetadataFile))
		drop := errors.Is(err, storage.ErrNotExist)
		if err == nil {
			var m CheckpointMeta
			drop = json.Unmarshal(raw, &m) == nil && m.IsTemporary
		} else if !drop {
			errs = append(errs, err.Error())
			continue
		}
		if drop {
			// The marker first: a half-deleted checkpoint is incomplete,
			// never a damaged complete one.
			if err := storage.Delete(ctx, storage.Join(s.Dir, MetadataFile)); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			if err := storage.DeleteAll(ctx, s.Dir); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("prune checkpoints under %s: %s", j.Stage.URLOf("checkpoints"), strings.Join(errs, "; "))
	}
	return nil
}

// exportMarkers are an export's files published last: what readers look
// for (config.json in hf/, adapter_config.json in adapter/).
var exportMarkers = []string{weights.ConfigName, lora.ConfigName}

// publishExport uploads export dir (Out/hf/step-N or Out/adapter/step-N)
// and drops the local copy.
func (j *Job) publishExport(ctx context.Context, dir string) error {
	if !j.remote() {
		return nil
	}
	rel, err := filepath.Rel(j.Out, dir)
	if err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("publish export: %s is not under %s", dir, j.Out)
	}
	if err := j.Stage.Publish(ctx, filepath.ToSlash(rel), exportMarkers...); err != nil {
		return fmt.Errorf("publish export: %w", err)
	}
	return os.RemoveAll(dir)
}

// publishMetrics uploads metrics.jsonl.
func (j *Job) publishMetrics(ctx context.Context) error {
	if !j.remote() {
		return nil
	}
	if _, err := os.Stat(j.Stage.Path(MetricsName)); err != nil {
		return nil
	}
	j.metricsPublished = time.Now()
	return j.Stage.Publish(ctx, MetricsName)
}

// exportExists reports whether the export of step n under sub ("hf" or
// "adapter") is complete.
func (j *Job) exportExists(ctx context.Context, sub string, n int64) (bool, error) {
	if j.remote() {
		marker := weights.ConfigName
		if sub == "adapter" {
			marker = lora.ConfigName
		}
		return storage.Exists(ctx, j.Stage.URLOf(sub+"/"+weights.StepName(n)+"/"+marker))
	}
	_, err := os.Stat(filepath.Join(j.Out, sub, weights.StepName(n)))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// where names a path under Out as the output URL it stands for.
func (j *Job) where(p string) string {
	if !j.remote() {
		return p
	}
	if rel, err := filepath.Rel(j.Stage.Dir, p); err == nil && filepath.IsLocal(rel) {
		return j.Stage.URLOf(filepath.ToSlash(rel))
	}
	return p
}

// urlError rewrites scratch paths in err's message as output URLs, keeping
// what err matches.
func (j *Job) urlError(err error) error {
	if err == nil || !j.remote() {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), j.Stage.Dir, j.Stage.URL)
	if msg == err.Error() {
		return err
	}
	return &rewritten{msg: msg, err: err}
}

type rewritten struct {
	msg string
	err error
}

func (r *rewritten) Error() string { return r.msg }
func (r *rewritten) Unwrap() error { return r.err }
