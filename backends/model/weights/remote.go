package weights

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/marin-go/marin/plugins/storage"
)

// A model under a storage URL (gs://, s3://, …) is found the way
// FindModelDir finds one on disk, by listing, and copied into the local
// cache (storage.LocalDir) for reading. On object stores an export's
// config.json is written after its other files, and a checkpoint's
// metadata.json after everything, so either file marks a complete
// directory.

// resolveURL returns a local copy of the model under the remote URL u.
func resolveURL(ctx context.Context, u string, logf Logf) (string, error) {
	dir, err := FindModelURL(ctx, u)
	if err != nil {
		return "", err
	}
	if logf != nil {
		logf("reading model %s", dir)
	}
	local, err := storage.LocalDir(ctx, dir, nil)
	if err != nil {
		return "", fmt.Errorf("model %s: %w", dir, err)
	}
	return local, nil
}

// Where names the model that name resolved to (dir, its local directory)
// for records and logs: the URL of the export or checkpoint read when name
// is a storage URL, since the path of its local copy means nothing on
// another machine and differs between prefixes; else dir. A failed lookup
// is an error, never another name in the record.
func Where(ctx context.Context, name, dir string) (string, error) {
	if storage.IsLocal(name) {
		return dir, nil
	}
	return FindModelURL(ctx, name)
}

// FindModelURL is FindModelDir for a storage URL: u itself when it holds
// config.json, else the newest hf/step-N (or step-N) export with one, else
// the newest checkpoints/step-N with metadata.json.
func FindModelURL(ctx context.Context, u string) (string, error) {
	u = strings.TrimRight(u, "/")
	if ok, err := storage.Exists(ctx, storage.Join(u, ConfigName)); err != nil {
		return "", fmt.Errorf("model %s: %w", u, err)
	} else if ok {
		return u, nil
	}
	for _, sub := range []struct{ dir, marker string }{{"hf", ConfigName}, {"", ConfigName}, {"checkpoints", "metadata.json"}} {
		steps, err := StepURLs(ctx, storage.Join(u, sub.dir))
		if err != nil {
			return "", fmt.Errorf("model %s: %w", u, err)
		}
		for i := len(steps) - 1; i >= 0; i-- {
			ok, err := storage.Exists(ctx, storage.Join(steps[i].Dir, sub.marker))
			if err != nil {
				return "", fmt.Errorf("model %s: %w", u, err)
			}
			if ok {
				return steps[i].Dir, nil
			}
		}
	}
	return "", fmt.Errorf("model %s: no config.json there, and no hf/step-N or checkpoints/step-N inside: %w", u, storage.ErrNotExist)
}

// StepURLs lists the "step-N" directories under the URL dir, sorted by N
// ascending (StepDirs for storage URLs; Dir holds the URL).
func StepURLs(ctx context.Context, dir string) ([]StepDir, error) {
	ents, err := storage.List(ctx, storage.DirPrefix(dir), "/")
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []StepDir
	for _, e := range ents {
		if !e.IsDir {
			continue
		}
		name := strings.TrimSuffix(e.Key, "/")
		name = name[strings.LastIndex(name, "/")+1:]
		n, ok := ParseStepName(name)
		if !ok {
			continue
		}
		out = append(out, StepDir{Step: n, Dir: storage.Join(dir, name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Step < out[j].Step })
	return out, nil
}

// resolveTokenizerURL returns a local copy of the tokenizer files of a
// remote tokenizer: a tokenizer.json URL or a directory holding one.
func resolveTokenizerURL(ctx context.Context, u string) (string, error) {
	dir := strings.TrimRight(u, "/")
	if strings.HasSuffix(dir, ".json") {
		dir = dir[:strings.LastIndex(dir, "/")]
	}
	keep := map[string]bool{}
	for _, t := range TokenizerFiles {
		keep[t] = true
	}
	local, err := storage.LocalDir(ctx, dir, func(rel string) bool { return keep[rel] })
	if err != nil {
		return "", fmt.Errorf("tokenizer %s: %w", u, err)
	}
	return local, nil
}
