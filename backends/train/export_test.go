package train

// SetAfterStep installs a hook the loop calls after each step (tests use
// it to kill a run at a chosen step).
func SetAfterStep(j *Job, f func(int64) error) { j.afterStep = f }
