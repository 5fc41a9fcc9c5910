"""Summarise a pytest JUnit XML report; exit 1 if anything failed, was skipped, or nothing ran.

A skipped test is not a pass: a stage that skipped part of its work must not be reported green.
"""

import sys
import xml.etree.ElementTree as ET

suites = ET.parse(sys.argv[1]).getroot()
counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for suite in suites.iter("testsuite"):
    for key in counts:
        counts[key] += int(suite.get(key, 0))
passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
print(
    f"{passed} passed, {counts['failures']} failed, {counts['errors']} errors, "
    f"{counts['skipped']} skipped"
)
for case in suites.iter("testcase"):
    if case.find("skipped") is not None:
        print(f"  skipped: {case.get('classname')}::{case.get('name')}")
sys.exit(0 if counts["tests"] and passed == counts["tests"] else 1)
