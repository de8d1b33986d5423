"""helm/wsgate/rules/wsgate.rules.yaml with Debian's promtool: `check rules`, and `test rules`
with wsgate.rules.test.yaml, which holds a case for every alert (fires on the bad series; the good
series beside it must stay quiet, since promtool wants the exact set of alerts)."""

import os
import subprocess

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(HERE, "..", "..", "helm", "wsgate", "rules", "wsgate.rules.yaml")
TESTS = os.path.join(HERE, "wsgate.rules.test.yaml")
PROMTOOL = os.environ.get("PROMTOOL_BIN", "/usr/bin/promtool")


def test_check_rules():
    p = subprocess.run([PROMTOOL, "check", "rules", RULES], capture_output=True, text=True)
    assert p.returncode == 0 and "SUCCESS: 9 rules found" in p.stdout, p.stdout + p.stderr


def test_unit_tests_pass():
    p = subprocess.run([PROMTOOL, "test", "rules", TESTS], capture_output=True, text=True,
                       cwd=HERE)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr


def test_every_alert_has_a_firing_case_and_the_runbook_section_exists():
    rules = [r for g in yaml.safe_load(open(RULES))["groups"] for r in g["rules"]]
    cases = [c for t in yaml.safe_load(open(TESTS))["tests"] for c in t["alert_rule_test"]]
    runbooks = open(os.path.join(HERE, "..", "..", "docs", "runbooks.md")).read().lower()
    for r in rules:
        fired = [c for c in cases if c["alertname"] == r["alert"] and c.get("exp_alerts")]
        assert fired, f"{r['alert']} has no case where it fires"
        assert r["labels"]["severity"] in ("critical", "warning", "info")
        assert r.get("for"), r["alert"]
        anchor = r["annotations"]["runbook_url"].split("#", 1)[1]
        assert f"## {anchor}" in runbooks, f"docs/runbooks.md has no section {anchor}"
