#!/usr/bin/env python3
"""Turns micro_bench's XML report into a Markdown table (standard library only).

    build-rel/benchmarks/micro_bench -r xml | benchmarks/micro/summarize.py

Columns: Catch2's mean per call, the bootstrap confidence interval of that mean (low..high),
and the standard deviation of the samples. A wide interval or a std dev near the mean means
the run was disturbed (other processes on the machine): rerun, or read the low bound.
"""
import sys
import xml.etree.ElementTree as ET


def fmt(ns: str) -> str:
    v = float(ns)
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.2f} µs"
    return f"{v:.1f} ns"


def main() -> int:
    root = ET.parse(sys.stdin).getroot()
    print("| benchmark | mean | mean CI (low..high) | std dev |")
    print("| --- | ---: | ---: | ---: |")
    for tc in root.iter("TestCase"):
        for b in tc.iter("BenchmarkResults"):
            mean, sd = b.find("mean"), b.find("standardDeviation")
            print(f"| {tc.get('name')}: {b.get('name')} | {fmt(mean.get('value'))} | "
                  f"{fmt(mean.get('lowerBound'))}..{fmt(mean.get('upperBound'))} | "
                  f"{fmt(sd.get('value'))} |")
    ok = root.find("OverallResults")
    if ok is not None and ok.get("failures", "0") != "0":
        print(f"\n{ok.get('failures')} assertion(s) FAILED: the figures are not valid.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
