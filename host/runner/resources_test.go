package runner

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseResources(t *testing.T) {
	secs := int64(60)
	cases := []struct {
		name      string
		raw       any
		overrides map[string]string
		want      Resources
		err       string
	}{
		{name: "none", raw: nil, want: Resources{Nodes: 1, Device: "cpu"}},
		{name: "backend fields only", raw: map[string]any{"backend": "cpu", "threads": int64(0), "device": "cpu", "num_devices": int64(0), "node_count": int64(1)},
			want: Resources{Nodes: 1, Device: "cpu"}},
		{name: "auto requests nothing", raw: map[string]any{"device": "auto", "num_devices": int64(0)}, want: Resources{Nodes: 1, Device: "cpu"}},
		{name: "auto with a count is ambiguous", raw: map[string]any{"device": "auto", "num_devices": int64(8)}, err: `say device = "cuda" or "tpu"`},
		{name: "cpu ignores num_devices", raw: map[string]any{"num_devices": int64(4)}, want: Resources{Nodes: 1, Device: "cpu"}},
		{name: "everything", raw: map[string]any{
			"node_count": int64(2), "device": "cuda", "num_devices": 8.0, "cpus": int64(32), "memory": "480G", "time_limit": "1-12:00:00",
			"partition": "gpu", "account": "nlp", "qos": "high", "queue_name": "team-a", "image": "marin:1",
			"node_selector": map[string]any{"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
			"tolerations":   []any{map[string]any{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule", "toleration_seconds": 60.0}},
		}, want: Resources{
			Nodes: 2, Device: "cuda", DevicesPerNode: 8, CPUs: 32, MemoryMiB: 480 * 1024, TimeLimit: 36 * time.Hour,
			Partition: "gpu", Account: "nlp", QOS: "high", QueueName: "team-a", Image: "marin:1",
			NodeSelector: map[string]string{"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
			Tolerations:  []Toleration{{Key: "nvidia.com/gpu", Operator: "Exists", Effect: "NoSchedule", TolerationSeconds: &secs}},
		}},
		{name: "overrides win", raw: map[string]any{"partition": "cpu", "cpus": int64(2)},
			overrides: map[string]string{"partition": "gpu", "cpus": "16", "time_limit": "4h", "node_selector": "a=b,c=d", "tolerations": `[{"key":"k","value":"v","effect":"NoExecute"}]`},
			want: Resources{Nodes: 1, Device: "cpu", CPUs: 16, Partition: "gpu", TimeLimit: 4 * time.Hour,
				NodeSelector: map[string]string{"a": "b", "c": "d"}, Tolerations: []Toleration{{Key: "k", Value: "v", Effect: "NoExecute"}}}},
		{name: "gres stands for the count", raw: map[string]any{"device": "cuda", "gres": "gpu:a100:2"}, want: Resources{Nodes: 1, Device: "cuda", Gres: "gpu:a100:2"}},
		{name: "cuda needs a count", raw: map[string]any{"device": "cuda"}, err: "resources.num_devices is 0"},
		{name: "bad memory", raw: map[string]any{"memory": "lots"}, err: `resources.memory: "lots"`},
		{name: "bad time", raw: map[string]any{"time_limit": "soon"}, err: `resources.time_limit: "soon"`},
		{name: "bad device", raw: map[string]any{"device": "fpga"}, err: `resources.device: "fpga"`},
		{name: "zero nodes", raw: map[string]any{"node_count": int64(0)}, err: "resources.node_count: 0"},
		{name: "fractional cpus", raw: map[string]any{"cpus": 1.5}, err: "resources.cpus: want an integer"},
		{name: "not a config", raw: "gpu", err: "want a ResourceConfig"},
		{name: "unknown override", overrides: map[string]string{"gpus": "8"}, err: "--resource gpus: unknown field"},
		{name: "bad override", overrides: map[string]string{"cpus": "many"}, err: "--resource cpus=many: want an integer"},
		{name: "bad toleration", raw: map[string]any{"tolerations": []any{map[string]any{"key": "k", "operator": "Exists", "value": "v"}}}, err: "operator Exists takes no value"},
		{name: "unknown toleration key", raw: map[string]any{"tolerations": []any{map[string]any{"key": "k", "colour": "red"}}}, err: `unknown key "colour"`},
		{name: "line break", raw: map[string]any{"partition": "a\nb"}, err: "line break"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseResources(c.raw, c.overrides)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want it to contain %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "512M": 512, "512MB": 512, "64G": 65536, "64Gi": 65536, "64GiB": 65536, "1.5G": 1536, "1T": 1 << 20, "2048K": 2, "1025k": 2} {
		got, err := ParseMemory(in)
		if err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "64X", "-1G", "0", "1KB2", "64 GB extra", "1k"} {
		if _, err := ParseMemory(in); err == nil {
			t.Errorf("ParseMemory(%q): no error", in)
		}
	}
}

func TestParseTimeLimit(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90m": 90 * time.Minute, "4h30m": 270 * time.Minute, "30": 30 * time.Minute, "30:15": 30*time.Minute + 15*time.Second,
		"12:00:00": 12 * time.Hour, "2-00": 48 * time.Hour, "1-12:30": 36*time.Hour + 30*time.Minute, "1-00:00:05": 24*time.Hour + 5*time.Second,
	} {
		got, err := ParseTimeLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseTimeLimit(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-5m", "soon", "1:2:3:4", "1-2:3:4:5", "x-1", "0:00"} {
		if _, err := ParseTimeLimit(in); err == nil {
			t.Errorf("ParseTimeLimit(%q): no error", in)
		}
	}
}

func FuzzParseTimeLimit(f *testing.F) {
	for _, s := range []string{"90m", "1-12:00:00", "30:15", "2-00", "4h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTimeLimit(s)
		if err == nil && d <= 0 {
			t.Errorf("ParseTimeLimit(%q) = %s without an error", s, d)
		}
	})
}

func FuzzParseMemory(f *testing.F) {
	for _, s := range []string{"64G", "512", "1.5Ti", "2048K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMemory(s)
		if err == nil && m < 1 {
			t.Errorf("ParseMemory(%q) = %d without an error", s, m)
		}
	})
}

func TestCheckPrefix(t *testing.T) {
	cases := []struct {
		runner, prefix string
		shared         bool
		err            string
	}{
		{Local, "file:///home/x/out", false, ""},
		{Local, "mem://t/out", false, ""},
		{Slurm, "file:///home/x/out", false, "--shared-prefix"},
		{Slurm, "file:///shared/out", true, ""},
		{Slurm, "gs://bucket/out", false, ""},
		{Kubernetes, "s3://bucket/out", false, ""},
		{Kubernetes, "mem://t/out", true, "memory"},
	}
	for _, c := range cases {
		err := CheckPrefix(c.runner, c.prefix, c.shared)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("CheckPrefix(%s, %s, %v) = %v, want %q", c.runner, c.prefix, c.shared, err, c.err)
		}
	}
}
