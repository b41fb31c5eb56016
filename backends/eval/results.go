package eval

import (
	"fmt"
	"math"

	"github.com/marin-go/marin/plugins/evaltasks"
)

// Results is lm-evaluation-harness's results JSON (results.json), with the
// same keys: per task and group the metrics as "metric,filter" and
// "metric_stderr,filter" ("N/A" where lm-eval has no standard error),
// "alias", "name" and "sample_len"; the groups again under "groups";
// "group_subtasks", "configs", "versions", "n-shot", "higher_is_better",
// "n-samples"; the run's "config" and timing.
type Results struct {
	Results        map[string]TaskMetrics    `json:"results"`
	Groups         map[string]TaskMetrics    `json:"groups,omitempty"`
	GroupSubtasks  map[string][]string       `json:"group_subtasks"`
	Configs        map[string]map[string]any `json:"configs"`
	Versions       map[string]any            `json:"versions"`
	NShot          map[string]int            `json:"n-shot"`
	HigherIsBetter map[string]map[string]any `json:"higher_is_better"`
	NSamples       map[string]SampleCount    `json:"n-samples"`
	Config         map[string]any            `json:"config"`
	Date           float64                   `json:"date,omitempty"`
	TotalSeconds   float64                   `json:"total_evaluation_time_seconds"`
	// Marin additions: the model evaluated and the data it was read from.
	ModelName string              `json:"model_name,omitempty"`
	Data      map[string]DocsTask `json:"marin_data,omitempty"`
	Extra     map[string]any      `json:"marin,omitempty"`
}

// TaskMetrics are one task's or group's entries.
type TaskMetrics map[string]any

// SampleCount is n-samples: documents in the split and evaluated.
type SampleCount struct {
	Original  int `json:"original"`
	Effective int `json:"effective"`
}

// Sample is one per-document record (lm-eval's samples_{task}.jsonl line).
type Sample map[string]any

func newResults() *Results {
	return &Results{
		Results:        map[string]TaskMetrics{},
		GroupSubtasks:  map[string][]string{},
		Configs:        map[string]map[string]any{},
		Versions:       map[string]any{},
		NShot:          map[string]int{},
		HigherIsBetter: map[string]map[string]any{},
		NSamples:       map[string]SampleCount{},
		Config:         map[string]any{},
	}
}

// jsonFloat keeps NaN and infinities (which JSON cannot hold) as strings.
func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

func asFloat(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

// aggregateGroups computes every group's aggregate metrics from its leaf
// tasks, as lm-eval's Group.aggregate does: the mean of the leaves'
// values, weighted by their sample counts when weight_by_size, with the
// pooled standard error; plus marin's macro average ({metric}_macro,
// unweighted over the leaves) where asked.
func (r *Results) aggregateGroups(s *evaltasks.Suite) error {
	for _, g := range s.Groups {
		r.GroupSubtasks[g.Group] = append([]string(nil), g.Task...)
		leaves := s.Leaves(g.Group)
		alias := g.GroupAlias
		if alias == "" {
			alias = g.Group
		}
		gm := TaskMetrics{"alias": alias, "name": g.Group}
		total := 0
		for _, l := range leaves {
			if n, ok := r.Results[l]["sample_len"].(int); ok {
				total += n
			}
		}
		gm["sample_len"] = total
		sampleCount := map[string]int{}
		hib := map[string]any{}
		for _, a := range g.AggregateMetricList {
			filters := a.FilterList
			if len(filters) == 0 {
				seen := map[string]bool{}
				for _, l := range leaves {
					for k := range r.Results[l] {
						if m, f, ok := splitKey(k); ok && m == a.Metric && !seen[f] {
							seen[f] = true
							filters = append(filters, f)
						}
					}
				}
				sortStrings(filters)
			}
			for _, f := range filters {
				key := a.Metric + "," + f
				skey := a.Metric + "_stderr," + f
				var vals, ses []float64
				var sizes []int
				na := false
				for _, l := range leaves {
					tm := r.Results[l]
					v, ok := asFloat(tm[key])
					if !ok {
						continue
					}
					vals = append(vals, v)
					n, _ := tm["sample_len"].(int)
					sizes = append(sizes, n)
					if se, ok := asFloat(tm[skey]); ok {
						ses = append(ses, se)
					} else {
						na = true
					}
				}
				if len(vals) == 0 {
					continue
				}
				var num, den float64
				for i, v := range vals {
					w := 1.0
					if a.WeightBySize {
						w = float64(sizes[i])
					}
					num += v * w
					den += w
				}
				gm[key] = num / den
				n := 0
				for _, s := range sizes {
					n += s
				}
				sampleCount[key] = n
				if !na && len(ses) == len(vals) {
					gm[skey] = jsonFloat(pooledStderr(ses, sizes))
				} else {
					gm[skey] = "N/A"
				}
				if a.Macro {
					gm[a.Metric+"_macro,"+f] = mean(vals)
				}
			}
			for _, l := range leaves {
				if h, ok := r.HigherIsBetter[l][a.Metric]; ok {
					hib[a.Metric] = h
				}
			}
		}
		if len(sampleCount) > 0 {
			gm["sample_count"] = sampleCount
		}
		r.Results[g.Group] = gm
		if len(g.AggregateMetricList) > 0 {
			if r.Groups == nil {
				r.Groups = map[string]TaskMetrics{}
			}
			r.Groups[g.Group] = gm
		}
		r.Versions[g.Group] = version(g.Metadata)
		if len(hib) > 0 {
			r.HigherIsBetter[g.Group] = hib
		}
		shots := map[int]bool{}
		for _, l := range leaves {
			shots[r.NShot[l]] = true
		}
		if len(shots) == 1 {
			for k := range shots {
				r.NShot[g.Group] = k
			}
		}
	}
	return nil
}

// splitKey splits "metric,filter" (not stderr keys).
func splitKey(k string) (metric, filter string, ok bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == ',' {
			m := k[:i]
			if len(m) > 7 && m[len(m)-7:] == "_stderr" {
				return "", "", false
			}
			return m, k[i+1:], true
		}
	}
	return "", "", false
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Headline returns the main metric of a task or group, for logs and
// tables: the first aggregate metric of a group, else the first metric of
// the task's metric list, with its first filter.
func Headline(s *evaltasks.Suite, r *Results, name string) (string, float64, bool) {
	tm, ok := r.Results[name]
	if !ok {
		return "", 0, false
	}
	var metric string
	if g := s.Group(name); g != nil && len(g.AggregateMetricList) > 0 {
		metric = g.AggregateMetricList[0].Metric
	} else if t := s.Task(name); t != nil {
		if len(t.MetricList) > 0 {
			metric = t.MetricList[0].Metric
		}
	}
	best := ""
	for k := range tm {
		if m, _, ok := splitKey(k); ok && (metric == "" || m == metric) {
			if best == "" || k < best {
				best = k
			}
		}
	}
	if best == "" {
		return "", 0, false
	}
	v, ok := asFloat(tm[best])
	return best, v, ok
}

func (r *Results) String() string {
	return fmt.Sprintf("results for %d tasks and groups", len(r.Results))
}
