#!/usr/bin/env python3
"""Print the output of every failed test in a ctest LastTest.log.

scripts/test.sh calls this after a failed ctest run so that the end of the CI
log (often all a CI page keeps) names what failed and shows why.
"""
import re
import sys


def main(path):
    text = open(path, errors="replace").read()
    # Each test's block starts with "N/M Testing: NAME" and ends with
    # "Test Passed." or "Test Failed." (or a line naming the failure kind).
    blocks = re.split(r"\n(?=\d+/\d+ Testing: )", text)
    for block in blocks:
        match = re.match(r"\d+/\d+ Testing: (.*)", block)
        if not match or "\nTest Passed." in block:
            continue
        name = match.group(1)
        output = block.split("Output:\n", 1)[-1]
        lines = output.splitlines()
        print(f"---- {name} (last 40 lines of its output)")
        for line in lines[-40:]:
            print("  " + line)


if __name__ == "__main__":
    main(sys.argv[1])
