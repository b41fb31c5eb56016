// Package checkpoint names the on-disk layout every training backend
// shares, so a run can move between backends at any checkpoint and every
// backend's export loads in transformers and vLLM:
//
//	hf/step-N/ (an HF export)
//	  config.json             the model's HF config
//	  generation_config.json
//	  model.safetensors       float32 weights with HF names, row-major; above
//	                          10 GB sharded as model-0000i-of-0000n.safetensors
//	                          plus model.safetensors.index.json
//	  tokenizer files
//
//	checkpoints/step-N/ (a training checkpoint): config.json and the
//	weights as above, plus
//	  optimizer.bin           AdamW's state in backends/optim's binary layout
//	                          (step, per-tensor first and second moments, CRC)
//	  metadata.json           {"step": N, "extra": {trainer state}, ...}
//
// backends/weights writes and reads the model files and backends/train the
// checkpoints; the cpu and gomlx backends both go through them, and
// backends/conformance checks that a checkpoint written by one resumes in
// the other. Directories are written atomically (a temporary sibling,
// then a rename).
package checkpoint

// File names inside a checkpoint directory.
const (
	ConfigFile    = "config.json"
	OptimizerFile = "optimizer.bin"
	MetadataFile  = "metadata.json"
)
