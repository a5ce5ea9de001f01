"""junit.xml: one <testsuite> per suite, one <testcase> per check, a <failure> per finding.

The shape is the common JUnit one (Jenkins' junit-10.xsd, as Surefire writes it), which GitHub,
GitLab, Jenkins and the test-report actions all read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.findings import Finding, RunResult, SuiteResult
from harness.report.common import evidence_text, findings_by_check, xml_safe

_EVIDENCE_LIMIT = 8_000


def _time(seconds: float) -> str:
    """SUREFIRE_TIME: digits, at most three decimals, never negative or exponent."""
    return f"{max(seconds, 0.0):.3f}"


def _failure_text(finding: Finding) -> str:
    parts = [finding.message]
    if finding.task_id:
        parts.append(f"task: {finding.task_id}")
    if finding.evidence:
        parts.append("evidence:\n" + evidence_text(finding.evidence, _EVIDENCE_LIMIT))
    if finding.repro:
        parts.append("repro:\n" + finding.repro)
    return "\n".join(parts)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_safe(v) for k, v in attrs.items()})
    if text is not None:
        element.text = xml_safe(text)
    return element


def _suite(parent: ET.Element, suite: SuiteResult, run: RunResult) -> tuple[int, int, int]:
    by_check = findings_by_check(suite)
    element = _sub(parent, "testsuite", name=suite.name, tests="0", failures="0", errors="0",
                   skipped="0", time=_time(suite.duration_s), timestamp=run.started_at)
    props = _sub(element, "properties")
    _sub(props, "property", name="target", value=run.target)
    _sub(props, "property", name="run_id", value=run.run_id)
    _sub(props, "property", name="status", value=suite.status)
    tests = failures = errors = skipped = 0
    classname = f"harness.{suite.name}"
    for check, findings in by_check.items():
        case = _sub(element, "testcase", name=check, classname=classname)
        tests += 1
        if findings:
            failures += 1
            for finding in findings:
                message = f"[{finding.severity}] {finding.message}"
                if finding.task_id:
                    message += f" (task {finding.task_id})"
                _sub(case, "failure", _failure_text(finding), type=finding.severity, message=message)
        elif suite.status == "skipped":
            skipped += 1
            _sub(case, "skipped", message=suite.error or "suite skipped")
    for check, why in suite.skipped.items():
        if check in by_check:
            continue
        case = _sub(element, "testcase", name=check, classname=classname)
        tests += 1
        skipped += 1
        _sub(case, "skipped", message=why)
    if suite.status == "error" or (suite.error and suite.status != "skipped"):
        case = _sub(element, "testcase", name=f"{suite.name} (suite)", classname=classname,
                    time=_time(suite.duration_s))
        tests += 1
        errors += 1
        reason = suite.error or "the suite ended in error"
        _sub(case, "error", reason, type="SuiteError", message=reason.splitlines()[0][:500])
    elif suite.status == "skipped" and not by_check:
        case = _sub(element, "testcase", name=f"{suite.name} (suite)", classname=classname)
        tests += 1
        skipped += 1
        _sub(case, "skipped", message=suite.error or "suite skipped")
    element.set("tests", str(tests))
    element.set("failures", str(failures))
    element.set("errors", str(errors))
    element.set("skipped", str(skipped))
    return tests, failures, errors


def render_junit(result: RunResult) -> str:
    """The XML text of junit.xml (UTF-8, with declaration)."""
    root = ET.Element("testsuites", {"name": xml_safe(f"harness {result.run_id}")})
    tests = failures = errors = 0
    total_time = 0.0
    for suite in result.suites:
        t, f, e = _suite(root, suite, result)
        tests, failures, errors = tests + t, failures + f, errors + e
        total_time += max(suite.duration_s, 0.0)
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    root.set("time", _time(total_time))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
