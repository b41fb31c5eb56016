package runner

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Resources are what a step's job asks its scheduler for. They come from the
// step's ResourceConfig (config key "resources", written by the script) with
// --resource FIELD=VALUE overrides on top; each scheduler turns them into its
// own terms (see the README's table).
type Resources struct {
	// Nodes is ResourceConfig.node_count (at least 1).
	Nodes int
	// Device is the accelerator kind to request: "cpu" (none), "cuda" or
	// "tpu". ResourceConfig's "auto" requests none.
	Device string
	// DevicesPerNode is the accelerators per node to request
	// (ResourceConfig.num_devices): GPUs for cuda, TPU chips for tpu; 0 for cpu.
	DevicesPerNode int
	// CPUs per node (ResourceConfig.cpus); 0 leaves the scheduler's default.
	CPUs int
	// MemoryMiB per node (ResourceConfig.memory); 0 leaves the default.
	MemoryMiB int64
	// TimeLimit bounds the job (ResourceConfig.time_limit); 0: none asked.
	TimeLimit time.Duration
	// Slurm only: Partition, Account, QOS, and Gres, which replaces the
	// --gpus-per-node derived from the device when set ("gpu:h100:8").
	Partition, Account, QOS, Gres string
	// Kubernetes only: QueueName is the Kueue LocalQueue
	// (the kueue.x-k8s.io/queue-name label), NodeSelector and Tolerations
	// go to the pod, Image replaces the runner's image for this step.
	QueueName    string
	NodeSelector map[string]string
	Tolerations  []Toleration
	Image        string
}

// Toleration is a Kubernetes pod toleration.
type Toleration struct {
	Key               string `json:"key,omitempty"`
	Operator          string `json:"operator,omitempty"` // Equal (default) or Exists
	Value             string `json:"value,omitempty"`
	Effect            string `json:"effect,omitempty"` // NoSchedule, PreferNoSchedule, NoExecute
	TolerationSeconds *int64 `json:"toleration_seconds,omitempty"`
}

// Fields lists the ResourceConfig fields the runners read, for --resource
// and error messages.
var Fields = []string{
	"node_count", "device", "num_devices", "cpus", "memory", "time_limit",
	"partition", "account", "qos", "gres", "queue_name", "node_selector", "tolerations", "image",
}

// Fields of ResourceConfig that only the backends read; --resource accepts
// and ignores them so a typo is still caught.
var backendFields = map[string]bool{"backend": true, "threads": true, "pjrt_plugin": true}

// ParseResources reads a step's resources: raw is the step config's
// "resources" value (a map, or nil for a step without one) and overrides are
// --resource FIELD=VALUE pairs, which win over the script.
func ParseResources(raw any, overrides map[string]string) (Resources, error) {
	r := Resources{Nodes: 1, Device: "cpu"}
	m := map[string]any{}
	switch v := raw.(type) {
	case nil:
	case map[string]any:
		for k, x := range v {
			m[k] = x
		}
	default:
		return r, fmt.Errorf("resources: want a ResourceConfig, got %T", raw)
	}
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known(k) && !backendFields[k] {
			return r, fmt.Errorf("--resource %s: unknown field; the runners read %s", k, strings.Join(Fields, ", "))
		}
		v, err := overrideValue(k, overrides[k])
		if err != nil {
			return r, fmt.Errorf("--resource %s=%s: %w", k, overrides[k], err)
		}
		m[k] = v
	}
	var err error
	field := func(name string, f func(v any) error) {
		if err != nil {
			return
		}
		v, ok := m[name]
		if !ok || v == nil {
			return
		}
		if e := f(v); e != nil {
			err = fmt.Errorf("resources.%s: %w", name, e)
		}
	}
	field("node_count", func(v any) (e error) { r.Nodes, e = positiveInt(v); return })
	field("device", func(v any) error {
		s, ok := v.(string)
		switch {
		case !ok:
			return fmt.Errorf("want a string, got %T", v)
		case s == "auto" || s == "cpu" || s == "cuda" || s == "tpu":
			r.Device = s
			return nil
		}
		return fmt.Errorf("%q: want auto, cpu, cuda or tpu", s)
	})
	field("num_devices", func(v any) (e error) { r.DevicesPerNode, e = nonNegativeInt(v); return })
	field("cpus", func(v any) (e error) { r.CPUs, e = nonNegativeInt(v); return })
	field("memory", func(v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a string such as \"64G\", got %T", v)
		}
		mib, e := ParseMemory(s)
		r.MemoryMiB = mib
		return e
	})
	field("time_limit", func(v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a string such as \"4h\" or \"1-12:00:00\", got %T", v)
		}
		d, e := ParseTimeLimit(s)
		r.TimeLimit = d
		return e
	})
	for _, s := range []struct {
		name string
		dst  *string
	}{{"partition", &r.Partition}, {"account", &r.Account}, {"qos", &r.QOS}, {"gres", &r.Gres}, {"queue_name", &r.QueueName}, {"image", &r.Image}} {
		field(s.name, func(v any) error {
			str, ok := v.(string)
			if !ok {
				return fmt.Errorf("want a string, got %T", v)
			}
			if strings.ContainsAny(str, "\n\r\x00") {
				return fmt.Errorf("%q contains a line break", str)
			}
			*s.dst = str
			return nil
		})
	}
	field("node_selector", func(v any) error {
		sel, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("want a dict of strings, got %T", v)
		}
		r.NodeSelector = map[string]string{}
		for k, x := range sel {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("%s: want a string, got %T", k, x)
			}
			r.NodeSelector[k] = s
		}
		return nil
	})
	field("tolerations", func(v any) error {
		raw, e := json.Marshal(v)
		if e != nil {
			return e
		}
		var ts []map[string]any
		if e := json.Unmarshal(raw, &ts); e != nil {
			return fmt.Errorf("want a list of dicts with key, operator, value, effect: %w", e)
		}
		for i, t := range ts {
			tol, e := toleration(t)
			if e != nil {
				return fmt.Errorf("[%d]: %w", i, e)
			}
			r.Tolerations = append(r.Tolerations, tol)
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	switch {
	case r.Device == "auto" && r.DevicesPerNode > 0 && r.Gres == "":
		return r, fmt.Errorf("resources.device is auto with num_devices %d: say device = \"cuda\" or \"tpu\", so that the scheduler knows which accelerators to request", r.DevicesPerNode)
	case r.Device == "auto":
		// The backend's best device where it lands; nothing to request.
		r.Device, r.DevicesPerNode = "cpu", 0
	case r.Device == "cpu":
		r.DevicesPerNode = 0
	case r.DevicesPerNode == 0 && r.Gres == "":
		return r, fmt.Errorf("resources.num_devices is 0 (\"every device of the machine\"), but a cluster job must ask for a number: set num_devices to the %s devices per node", r.Device)
	}
	return r, nil
}

func known(k string) bool {
	for _, f := range Fields {
		if f == k {
			return true
		}
	}
	return false
}

// overrideValue turns a --resource string into the value the script would
// have given: ints for counts, a map for node_selector ("k=v,k2=v2"), a list
// for tolerations (JSON).
func overrideValue(k, s string) (any, error) {
	switch k {
	case "node_count", "num_devices", "cpus", "threads":
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("want an integer")
		}
		return n, nil
	case "node_selector":
		m := map[string]any{}
		for _, kv := range strings.Split(s, ",") {
			if kv == "" {
				continue
			}
			key, val, ok := strings.Cut(kv, "=")
			if !ok || key == "" {
				return nil, fmt.Errorf("want KEY=VALUE[,KEY=VALUE…]")
			}
			m[key] = val
		}
		return m, nil
	case "tolerations":
		var v []any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("want a JSON list such as [{\"key\":\"nvidia.com/gpu\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]: %w", err)
		}
		return v, nil
	}
	return s, nil
}

func toleration(t map[string]any) (Toleration, error) {
	var out Toleration
	for k, v := range t {
		switch k {
		case "key", "operator", "value", "effect":
			s, ok := v.(string)
			if !ok {
				return out, fmt.Errorf("%s: want a string, got %T", k, v)
			}
			switch k {
			case "key":
				out.Key = s
			case "operator":
				if s != "Equal" && s != "Exists" {
					return out, fmt.Errorf("operator %q: want Equal or Exists", s)
				}
				out.Operator = s
			case "value":
				out.Value = s
			case "effect":
				if s != "" && s != "NoSchedule" && s != "PreferNoSchedule" && s != "NoExecute" {
					return out, fmt.Errorf("effect %q: want NoSchedule, PreferNoSchedule or NoExecute", s)
				}
				out.Effect = s
			}
		case "toleration_seconds":
			f, ok := v.(float64)
			if !ok || f != math.Trunc(f) {
				return out, fmt.Errorf("toleration_seconds: want an integer, got %v", v)
			}
			n := int64(f)
			out.TolerationSeconds = &n
		default:
			return out, fmt.Errorf("unknown key %q (want key, operator, value, effect, toleration_seconds)", k)
		}
	}
	if out.Operator == "Exists" && out.Value != "" {
		return out, fmt.Errorf("operator Exists takes no value")
	}
	if out.Key == "" && out.Operator != "Exists" {
		return out, fmt.Errorf("an empty key needs operator Exists")
	}
	return out, nil
}

func asInt(v any) (int64, error) {
	switch n := v.(type) {
	case int:
		return int64(n), nil
	case int64:
		return n, nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, fmt.Errorf("want an integer, got %v", n)
		}
		return int64(n), nil
	case json.Number:
		return n.Int64()
	}
	return 0, fmt.Errorf("want an integer, got %T", v)
}

func positiveInt(v any) (int, error) {
	n, err := asInt(v)
	if err == nil && (n < 1 || n > 1<<20) {
		err = fmt.Errorf("%d: want a positive number", n)
	}
	return int(n), err
}

func nonNegativeInt(v any) (int, error) {
	n, err := asInt(v)
	if err == nil && (n < 0 || n > 1<<20) {
		err = fmt.Errorf("%d: want zero or more", n)
	}
	return int(n), err
}

// ParseMemory reads a memory size in Slurm's convention: a number with an
// optional unit K, M, G or T (binary: 1G = 1024M; "Gi", "GB" and "GiB" read
// the same); no unit means megabytes. The result is in MiB.
func ParseMemory(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	f, err := strconv.ParseFloat(t[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("%q: want a size such as 512M, 64G or 1T", s)
	}
	var mib float64
	switch strings.ToUpper(strings.TrimSpace(t[i:])) {
	case "K", "KB", "KI", "KIB":
		mib = f / 1024
	case "", "M", "MB", "MI", "MIB":
		mib = f
	case "G", "GB", "GI", "GIB":
		mib = f * 1024
	case "T", "TB", "TI", "TIB":
		mib = f * 1024 * 1024
	default:
		return 0, fmt.Errorf("%q: unknown unit %q (want K, M, G or T)", s, t[i:])
	}
	if mib < 1 || mib > 1<<40 {
		return 0, fmt.Errorf("%q: out of range", s)
	}
	return int64(math.Ceil(mib)), nil
}

// ParseTimeLimit reads a time limit as a Go duration ("90m", "4h30m") or
// in Slurm's forms: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
func ParseTimeLimit(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	bad := fmt.Errorf("%q: want a duration such as 90m, 4h or 1-12:00:00 (days-hours:minutes:seconds)", s)
	if t == "" {
		return 0, bad
	}
	if d, err := time.ParseDuration(t); err == nil {
		if d <= 0 {
			return 0, bad
		}
		return d, nil
	}
	days := 0
	rest := t
	if before, after, ok := strings.Cut(t, "-"); ok {
		n, err := strconv.Atoi(before)
		if err != nil || n < 0 {
			return 0, bad
		}
		days, rest = n, after
	}
	parts := strings.Split(rest, ":")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, bad
		}
		nums[i] = n
	}
	// hms holds hours, minutes, seconds. With days the fields count from
	// hours (D-HH, D-HH:MM, D-HH:MM:SS); without, MM and MM:SS count from
	// minutes and HH:MM:SS from hours.
	var hms [3]int
	switch {
	case len(nums) > 3:
		return 0, bad
	case strings.Contains(t, "-") || len(nums) == 3:
		copy(hms[:], nums)
	default:
		copy(hms[1:], nums)
	}
	h, m, sec := hms[0], hms[1], hms[2]
	d := time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
	if d <= 0 {
		return 0, bad
	}
	return d, nil
}
