package train

import (
	"embed"
	"fmt"
	"strings"

	"github.com/marin-go/marin/backends/model/llama"
)

// The config.json of the hub models the experiments name, so that a plan
// knows their shapes without the network (the memory plan of exp606 and
// exp808, max_position_embeddings). They are used for planning only: a
// step that runs still downloads the model at its pinned revision and
// checks that config.json again.
//
//go:embed hubmodels/*.json
var hubModelFiles embed.FS

// HubModel is a hub model whose config ships with marin.
type HubModel struct {
	ID       string // e.g. meta-llama/Llama-3.1-8B
	Revision string // the commit its config.json was taken from
	Config   llama.Config
}

// hubModelRevisions pins the commit each shipped config.json comes from.
var hubModelRevisions = map[string]string{
	"meta-llama/Llama-3.1-8B": "d04e592bb4f6aa9cfee91e2e20afa771667e1d4b",
}

// KnownHubModel returns the shipped config of a hub model id (optionally
// "id@revision": the revision must be the pinned one), or false.
func KnownHubModel(id string) (HubModel, bool, error) {
	name, rev, _ := strings.Cut(id, "@")
	pinned, ok := hubModelRevisions[name]
	if !ok {
		return HubModel{}, false, nil
	}
	if rev != "" && rev != pinned && rev != "main" {
		return HubModel{}, false, nil
	}
	raw, err := hubModelFiles.ReadFile("hubmodels/" + strings.ReplaceAll(name, "/", "--") + ".json")
	if err != nil {
		return HubModel{}, false, fmt.Errorf("shipped config of %s: %w", name, err)
	}
	c, err := llama.ParseConfig(raw)
	if err != nil {
		return HubModel{}, false, fmt.Errorf("shipped config of %s: %w", name, err)
	}
	return HubModel{ID: name, Revision: pinned, Config: c}, true, nil
}
