package weights

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// MarinInfoName is the sidecar an hf/ export carries for marin's own tools.
const MarinInfoName = "marin.json"

// MarinInfo is marin.json: what a model was trained with, beyond what
// transformers reads.
type MarinInfo struct {
	// ChatFormat is the format the model was trained with (the token
	// cache's format object), used by marin chat and generate --chat.
	ChatFormat json.RawMessage `json:"chat_format,omitempty"`
	Step       int64           `json:"step"`
	// TokenizerSHA256 is the sha256 of the tokenizer.json trained with.
	TokenizerSHA256 string `json:"tokenizer_sha256,omitempty"`
	// BaseModel, in a LoRA adapter's directory, is its base model's
	// directory relative to the adapter's (slash-separated), tried before
	// adapter_config.json's absolute base_model_name_or_path.
	BaseModel string `json:"base_model,omitempty"`
}

// ReadMarinInfo reads dir's marin.json; nil when there is none.
func ReadMarinInfo(dir string) (*MarinInfo, error) {
	p := filepath.Join(dir, MarinInfoName)
	raw, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var info MarinInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &info, nil
}
