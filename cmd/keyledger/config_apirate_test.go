package main

import "testing"

func TestConfigAPIRate(t *testing.T) {
	base := map[string]string{"KEYLEDGER_MASTER_KEY": newKEK(t)}
	c, err := LoadConfig(envFunc(base))
	if err != nil || c.APIRate != 20 || c.WebConfig().APIRate != 20 {
		t.Fatalf("unset: rate %v, web %v, err %v; want 20 (the default in configVars)", c.APIRate, c.WebConfig().APIRate, err)
	}
	base["KEYLEDGER_API_RATE"] = "5000"
	c, err = LoadConfig(envFunc(base))
	if err != nil || c.APIRate != 5000 || c.WebConfig().APIRate != 5000 {
		t.Fatalf("5000: rate %v, web %v, err %v", c.APIRate, c.WebConfig().APIRate, err)
	}
	for _, bad := range []string{"fast", "0", "-3", "NaN", "Inf", "2e6"} {
		base["KEYLEDGER_API_RATE"] = bad
		_, err := LoadConfig(envFunc(base))
		if err == nil {
			t.Errorf("KEYLEDGER_API_RATE=%q accepted", bad)
			continue
		}
		checkOneLine(t, err.Error(), []string{"KEYLEDGER_API_RATE", bad}, nil)
	}
}
