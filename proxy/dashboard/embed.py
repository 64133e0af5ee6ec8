#!/usr/bin/env python3
"""Turns a file into a C++ source defining `const std::string_view NAME` with its bytes.

Usage: embed.py INPUT OUTPUT NAMESPACE NAME  (run by meson at build time)."""
import sys


def main():
    src, dst, namespace, name = sys.argv[1:5]
    data = open(src, "rb").read()
    rows = []
    for i in range(0, len(data), 20):
        rows.append("  " + ",".join(str(b if b < 128 else b - 256) for b in data[i:i + 20]) + ",")
    text = (
        "// Generated from %s by embed.py at build time. Do not edit.\n"
        "#include <string_view>\n\n"
        "namespace %s {\n"
        "namespace {\n"
        "const char kBytes[] = {\n%s\n  0};\n"
        "}  // namespace\n"
        "extern const std::string_view %s;\n"
        "const std::string_view %s(kBytes, sizeof kBytes - 1);\n"
        "}  // namespace %s\n" % (src.rsplit("/", 1)[-1], namespace, "\n".join(rows), name, name, namespace)
    )
    with open(dst, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
