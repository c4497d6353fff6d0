// Package helm_test renders and lints the Helm chart with the Helm SDK, and
// checks the objects a cluster would receive.
package helm_test

import (
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const chartDir = "keyledger"

// installValues are what docs/kubernetes.md tells people to pass.
func installValues() map[string]any {
	return map[string]any{
		"masterKey": map[string]any{"existingSecret": "keyledger-master-key"},
		"database":  map[string]any{"existingSecret": "keyledger-db"},
		"config":    map[string]any{"baseURL": "https://keys.example.com", "trustedProxies": "10.0.0.0/8"},
		"secretEnv": []any{map[string]any{"name": "KEYLEDGER_WEBHOOK_URL", "secretName": "keyledger-notify", "secretKey": "webhook-url"}},
	}
}

func render(t *testing.T, vals map[string]any) (map[string]string, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: "keyledger", Namespace: "keys", IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, rv)
}

func mustRender(t *testing.T, vals map[string]any) map[string]string {
	t.Helper()
	out, err := render(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return out
}

func decode(t *testing.T, out map[string]string, file string, into any) {
	t.Helper()
	doc, ok := out["keyledger/templates/"+file]
	if !ok || strings.TrimSpace(doc) == "" {
		t.Fatalf("%s was not rendered", file)
	}
	// Strict: a misspelled or misplaced field fails here, as the API server
	// would refuse it.
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("%s: %v\n%s", file, err, doc)
	}
}

func TestChartLints(t *testing.T) {
	res := lint.RunAll(chartDir, installValues(), "keys")
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}

func TestChartDeployment(t *testing.T) {
	out := mustRender(t, installValues())
	var d appsv1.Deployment
	decode(t, out, "deployment.yaml", &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("replicas = %v, want at least 2 by default", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("containers = %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe = %+v, want GET /readyz", c.ReadinessProbe)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe = %+v, want GET /healthz", c.LivenessProbe)
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("resources = %+v, want a memory limit and a CPU request", c.Resources)
	}
	sc, psc := c.SecurityContext, pod.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0:
		t.Errorf("pod securityContext = %+v, want non-root with a numeric uid", psc)
	case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("container securityContext = %+v, want a read-only root filesystem", sc)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("container securityContext allows privilege escalation")
	case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL":
		t.Errorf("capabilities = %+v, want drop ALL", sc.Capabilities)
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds <= 25 {
		t.Errorf("terminationGracePeriodSeconds = %v, want longer than the process's 25 s grace", pod.TerminationGracePeriodSeconds)
	}

	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["KEYLEDGER_DATABASE_URL"]; e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "keyledger-db" {
		t.Errorf("KEYLEDGER_DATABASE_URL = %+v, want it from Secret keyledger-db", e)
	}
	if e := env["KEYLEDGER_WEBHOOK_URL"]; e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "keyledger-notify" {
		t.Errorf("KEYLEDGER_WEBHOOK_URL = %+v, want it from Secret keyledger-notify", e)
	}
	keyFile := env["KEYLEDGER_MASTER_KEY_FILE"].Value
	mounted := false
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(keyFile, m.MountPath+"/") {
			mounted = m.ReadOnly
			for _, v := range pod.Volumes {
				if v.Name == m.Name && (v.Secret == nil || v.Secret.SecretName != "keyledger-master-key") {
					t.Errorf("volume %s = %+v, want Secret keyledger-master-key", v.Name, v.VolumeSource)
				}
			}
		}
	}
	if !mounted {
		t.Errorf("KEYLEDGER_MASTER_KEY_FILE=%q is not on a read-only mount of the master-key Secret", keyFile)
	}
	if _, set := env["KEYLEDGER_MASTER_KEY"]; set {
		t.Error("the master key must come as a file, not as an environment variable (visible in the pod spec)")
	}
}

func TestChartPodDisruptionBudget(t *testing.T) {
	out := mustRender(t, installValues())
	var d appsv1.Deployment
	var pdb policyv1.PodDisruptionBudget
	decode(t, out, "deployment.yaml", &d)
	decode(t, out, "pdb.yaml", &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 {
		t.Errorf("minAvailable = %v", pdb.Spec.MinAvailable)
	}
	for k, v := range pdb.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("PDB selects %s=%s, which the pods do not carry", k, v)
		}
	}
}

// No secret may reach a ConfigMap: neither by the chart's own choice nor
// through config.extra.
func TestChartConfigMapHoldsNoSecret(t *testing.T) {
	out := mustRender(t, installValues())
	var cm corev1.ConfigMap
	decode(t, out, "configmap.yaml", &cm)
	if cm.Data["KEYLEDGER_BASE_URL"] != "https://keys.example.com" {
		t.Errorf("KEYLEDGER_BASE_URL = %q", cm.Data["KEYLEDGER_BASE_URL"])
	}
	for k := range cm.Data {
		for _, secret := range []string{"MASTER_KEY", "DATABASE_URL", "WEBHOOK", "SMTP", "SECRET", "TOKEN", "PASSWORD"} {
			if strings.Contains(k, secret) {
				t.Errorf("ConfigMap holds %s", k)
			}
		}
	}
	for _, name := range []string{"KEYLEDGER_DATABASE_URL", "KEYLEDGER_MASTER_KEY", "KEYLEDGER_OIDC_CLIENT_SECRET", "KEYLEDGER_SMTP_URL"} {
		vals := installValues()
		vals["config"].(map[string]any)["extra"] = map[string]any{name: "postgres://u:hunter2@db/k"}
		_, err := render(t, vals)
		if err == nil || !strings.Contains(err.Error(), "secretEnv") {
			t.Errorf("config.extra.%s rendered (err %v); want a refusal that points to secretEnv", name, err)
		}
	}
}

func TestChartRefusesMissingSecrets(t *testing.T) {
	for _, drop := range []string{"masterKey", "database"} {
		vals := installValues()
		delete(vals, drop)
		_, err := render(t, vals)
		if err == nil || !strings.Contains(err.Error(), drop+".existingSecret is required") {
			t.Errorf("without %s: err = %v, want %q", drop, err, drop+".existingSecret is required")
		}
	}
}
