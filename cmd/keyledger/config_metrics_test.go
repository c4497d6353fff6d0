package main

import (
	"testing"
)

func TestConfigMetrics(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	base := func(extra map[string]string) map[string]string {
		env := map[string]string{"KEYLEDGER_MASTER_KEY": newKEK(t)}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}

	c, err := LoadConfig(envFunc(base(nil)))
	if err != nil || c.Metrics || c.WebConfig().Metrics.Enabled {
		t.Fatalf("unset: metrics %v (web %v), err %v; want off", c.Metrics, c.WebConfig().Metrics.Enabled, err)
	}

	// Off means off: the other two are ignored, however they look.
	c, err = LoadConfig(envFunc(base(map[string]string{"KEYLEDGER_METRICS": "false", "KEYLEDGER_METRICS_TOKEN": "x", "KEYLEDGER_METRICS_ALLOW": "nonsense"})))
	if err != nil || c.Metrics || c.MetricsToken != "" || c.MetricsAllow != nil || c.WebConfig().Metrics.Enabled {
		t.Fatalf("KEYLEDGER_METRICS=false: %+v, err %v; want off", c.WebConfig().Metrics, err)
	}

	c, err = LoadConfig(envFunc(base(map[string]string{"KEYLEDGER_METRICS": "true", "KEYLEDGER_METRICS_TOKEN": " " + token + "\n"})))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.WebConfig().Metrics; !m.Enabled || m.Token != token || m.Allow != nil {
		t.Errorf("token only: web config %+v", m)
	}

	c, err = LoadConfig(envFunc(base(map[string]string{"KEYLEDGER_METRICS": "1", "KEYLEDGER_METRICS_ALLOW": "10.0.0.0/8, 192.168.1.5,::1"})))
	if err != nil {
		t.Fatal(err)
	}
	m := c.WebConfig().Metrics
	if !m.Enabled || m.Token != "" || len(m.Allow) != 3 || m.Allow[0].String() != "10.0.0.0/8" || m.Allow[1].String() != "192.168.1.5/32" || m.Allow[2].String() != "::1/128" {
		t.Errorf("allow-list only: web config %+v", m)
	}

	c, err = LoadConfig(envFunc(base(map[string]string{"KEYLEDGER_METRICS": "true", "KEYLEDGER_METRICS_TOKEN": token, "KEYLEDGER_METRICS_ALLOW": "127.0.0.1"})))
	if err != nil || !c.Metrics || c.MetricsToken != token || len(c.MetricsAllow) != 1 {
		t.Errorf("both: %+v, err %v", c.WebConfig().Metrics, err)
	}

	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    []string
		secrets []string
	}{
		{"on with nobody allowed", map[string]string{"KEYLEDGER_METRICS": "true"},
			[]string{"KEYLEDGER_METRICS", "KEYLEDGER_METRICS_TOKEN", "KEYLEDGER_METRICS_ALLOW"}, nil},
		{"on with an empty list", map[string]string{"KEYLEDGER_METRICS": "true", "KEYLEDGER_METRICS_ALLOW": " , "},
			[]string{"KEYLEDGER_METRICS_TOKEN", "KEYLEDGER_METRICS_ALLOW"}, nil},
		{"not a boolean", map[string]string{"KEYLEDGER_METRICS": "maybe", "KEYLEDGER_METRICS_TOKEN": token},
			[]string{"KEYLEDGER_METRICS", "maybe", "true or false"}, []string{token}},
		{"bad network", map[string]string{"KEYLEDGER_METRICS": "true", "KEYLEDGER_METRICS_ALLOW": "10.0.0.0/33"},
			[]string{"KEYLEDGER_METRICS_ALLOW", "10.0.0.0/33"}, nil},
		{"not a network", map[string]string{"KEYLEDGER_METRICS": "true", "KEYLEDGER_METRICS_TOKEN": token, "KEYLEDGER_METRICS_ALLOW": "prometheus.internal"},
			[]string{"KEYLEDGER_METRICS_ALLOW", "prometheus.internal"}, []string{token}},
		{"short token", map[string]string{"KEYLEDGER_METRICS": "true", "KEYLEDGER_METRICS_TOKEN": "hunter2hunter2"},
			[]string{"KEYLEDGER_METRICS_TOKEN", "16"}, []string{"hunter2hunter2"}},
		{"token with a space", map[string]string{"KEYLEDGER_METRICS": "true", "KEYLEDGER_METRICS_TOKEN": "correct horse battery staple"},
			[]string{"KEYLEDGER_METRICS_TOKEN"}, []string{"correct horse", "battery staple"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(envFunc(base(tc.env)))
			if err == nil {
				t.Fatal("accepted")
			}
			checkOneLine(t, err.Error(), tc.want, tc.secrets)
		})
	}
}
