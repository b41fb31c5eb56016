package pluginhost

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/marin-go/marin/plugins/sdk"
)

// Plan calls the Plan of the op that serves req.Op: in-process for a
// built-in plugin, through a short-lived process for a third-party one.
func (m *Manager) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	p, err := m.resolve(req.Op)
	if err != nil {
		return nil, err
	}
	if req.ConfigJSON == nil {
		if req.ConfigJSON, err = json.Marshal(orEmpty(req.Config)); err != nil {
			return nil, fmt.Errorf("encode config of step %q: %w", req.StepName, err)
		}
	}
	if p.builtin != nil {
		return sdk.CallPlan(ctx, p.builtin.Ops[req.Op], req)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.StartTimeout)
	defer cancel()
	proc, err := m.start(p.command, m.log.With().Str("plugin", p.info.Name).Str("step", req.StepName).Logger())
	if err != nil {
		return nil, err
	}
	defer proc.stop()
	res, err := proc.client.Plan(ctx, req)
	if err != nil {
		return nil, proc.explain(fmt.Errorf("%s: plan: %w", p.where(), err))
	}
	return res, nil
}
