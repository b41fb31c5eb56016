package llama

// LossOptions configure the loss.
type LossOptions struct {
	// ZLossWeight adds ZLossWeight·logsumexp(logits)² per trained position
	// (PaLM's z-loss, Levanter's z_loss_weight); 0 disables it.
	ZLossWeight float64
}

// LossResult reports a loss over a batch as sums, so that gradient
// accumulation can weight micro-batches exactly: the mean over several
// micro-batches is ΣLoss/ΣCount.
type LossResult struct {
	// Loss is the sum over trained positions of the next-token
	// cross-entropy, in nats.
	Loss float64
	// ZLoss is the sum over trained positions of ZLossWeight·logsumexp².
	ZLoss float64
	// Count is the number of trained positions (true LossMask entries).
	Count int
}

// Mean is the mean cross-entropy per trained position (0 when Count is 0).
func (r LossResult) Mean() float64 {
	if r.Count == 0 {
		return 0
	}
	return r.Loss / float64(r.Count)
}

// ObjectiveMean is the mean of cross-entropy plus z-loss per trained
// position: the quantity whose gradient LossAndGrad computes (times scale),
// and what Levanter logs as the training loss.
func (r LossResult) ObjectiveMean() float64 {
	if r.Count == 0 {
		return 0
	}
	return (r.Loss + r.ZLoss) / float64(r.Count)
}

// Add returns the sums of two results (for accumulation).
func (r LossResult) Add(o LossResult) LossResult {
	return LossResult{Loss: r.Loss + o.Loss, ZLoss: r.ZLoss + o.ZLoss, Count: r.Count + o.Count}
}
